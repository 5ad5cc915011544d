/** Randomness comes in through this interface so a failing run can be replayed from its seed. */
export interface Random {
  /** A uniformly distributed unsigned 32-bit integer. */
  nextU32(): number;
  /** An integer in [0, maxExclusive). */
  int(maxExclusive: number): number;
  /** A float in [0, 1). */
  float(): number;
  bytes(length: number): Uint8Array;
}

/** sfc32: small, fast, and good enough for tests and simulation. Not for secrets. */
export class SeededRandom implements Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 16; i++) this.nextU32();
  }
  nextU32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }
  int(maxExclusive: number): number {
    return Math.floor(this.float() * maxExclusive);
  }
  float(): number {
    return this.nextU32() / 0x1_0000_0000;
  }
  bytes(length: number): Uint8Array {
    const out = new Uint8Array(length);
    const view = new DataView(out.buffer);
    let i = 0;
    for (; i + 4 <= length; i += 4) view.setUint32(i, this.nextU32(), true);
    for (; i < length; i++) out[i] = this.nextU32() & 0xff;
    return out;
  }
}
