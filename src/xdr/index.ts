export { XdrReader } from "./reader.ts";
export { XdrWriter } from "./writer.ts";
export { XdrError } from "./xdr-error.ts";
