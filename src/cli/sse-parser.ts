/**
 * Server-Sent Events read from a byte stream (the parts of the format the event stream uses: `id`,
 * `event`, `data`, comments). Bounded: a message longer than MESSAGE_CHARS_MAX is a broken stream.
 */
export interface SseMessage {
  readonly id: string | undefined;
  /** "message" unless the server named it. */
  readonly event: string;
  readonly data: string;
}

export const MESSAGE_CHARS_MAX = 1024 * 1024;

export class SseParser {
  private buffer = "";
  private id: string | undefined;
  private event = "message";
  private data: string[] = [];

  /** Feeds text; returns the messages it completed. */
  push(text: string): SseMessage[] {
    this.buffer += text;
    const messages: SseMessage[] = [];
    for (let end = this.buffer.indexOf("\n"); end >= 0; end = this.buffer.indexOf("\n")) {
      const line = this.buffer.slice(0, end).replace(/\r$/, "");
      this.buffer = this.buffer.slice(end + 1);
      const message = this.line(line);
      if (message !== undefined) messages.push(message);
    }
    const pending = this.buffer.length + this.data.reduce((n, d) => n + d.length, 0);
    if (pending > MESSAGE_CHARS_MAX)
      throw new Error(`an event stream message over ${MESSAGE_CHARS_MAX} characters`);
    return messages;
  }

  private line(line: string): SseMessage | undefined {
    if (line === "") {
      if (this.data.length === 0) {
        this.event = "message";
        return undefined;
      }
      const message = { id: this.id, event: this.event, data: this.data.join("\n") };
      this.event = "message";
      this.data = [];
      return message;
    }
    if (line.startsWith(":")) return undefined;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "id") this.id = value;
    else if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
    return undefined;
  }
}
