/**
 * The API both capnweb stacks serve: one method that returns its arguments.
 *
 * @module
 */

import { RpcTarget } from "capnweb";

/** `echo(...args)` resolves to `args`, so `echo(...params)` echoes `params`. */
export class EchoApi extends RpcTarget {
  /** Returns its arguments as an array. */
  echo(...args: unknown[]): unknown[] {
    return args;
  }
}
