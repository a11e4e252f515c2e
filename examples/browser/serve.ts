// Serves the browser example: the page (index.html), the browser bundle (dist/mist_client.js,
// from `./deno task build`) and /endpoint, which answers the page's client with the URL and
// secret of the runner it is given. Start the runner (`./deno task serve`), then, from the
// repository's root, with the URL and secret the runner printed:
//
//   MIST_URL=ws://127.0.0.1:8080/ MIST_SECRET=<the secret> ./deno run --allow-net=127.0.0.1 \
//     --allow-env=MIST_URL,MIST_SECRET --allow-read=examples/browser,dist examples/browser/serve.ts
//
// Prints: Open http://127.0.0.1:<port>/ (a free port), then open it: the page shows
// echo: ["from the page"]. The page's origin is loopback, which the runner accepts.

const url = Deno.env.get("MIST_URL");
const secret = Deno.env.get("MIST_SECRET");
if (!url || !secret) {
  console.error("Set MIST_URL and MIST_SECRET (the runner's ready line has both)");
  Deno.exit(2);
}

const files: Record<string, { file: URL; type: string }> = {
  "/": { file: new URL("./index.html", import.meta.url), type: "text/html" },
  "/mist_client.js": {
    file: new URL("../../dist/mist_client.js", import.meta.url),
    type: "text/javascript",
  },
};

Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) => console.log(`Open http://127.0.0.1:${port}/`),
}, async (request) => {
  const { pathname } = new URL(request.url);
  const headers = { "cache-control": "no-store" };
  // A real webview would ask its native side; this one knows the runner it was given.
  if (pathname === "/endpoint") return Response.json({ url, secret }, { headers });
  const served = files[pathname];
  if (!served) return new Response("Not found\n", { status: 404 });
  const body = await Deno.readFile(served.file);
  return new Response(body, { headers: { ...headers, "content-type": served.type } });
});
