/** IPv4 addresses and subnets in CIDR form, parsed at the edge into numbers. */

export interface Subnet {
  /** The network address as an unsigned 32-bit number. */
  readonly network: number;
  readonly prefix: number;
  /** As written, normalized: "10.7.1.0/24". */
  readonly text: string;
}

export class AddressError extends Error {
  override name = "AddressError";
}

export function parseIpv4(text: string): number {
  const parts = text.split(".");
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255))
    throw new AddressError(`"${text}" is not an IPv4 address`);
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

export function formatIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join(".");
}

const maskOf = (prefix: number): number => (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);

export function parseSubnet(text: string): Subnet {
  const [address, prefixText, extra] = text.split("/");
  if (
    address === undefined ||
    prefixText === undefined ||
    extra !== undefined ||
    !/^\d{1,2}$/.test(prefixText)
  )
    throw new AddressError(`"${text}" is not a subnet (like 10.7.1.0/24)`);
  const prefix = Number(prefixText);
  if (prefix > 32) throw new AddressError(`"${text}": a prefix is at most 32`);
  const network = (parseIpv4(address) & maskOf(prefix)) >>> 0;
  return { network, prefix, text: `${formatIpv4(network)}/${prefix}` };
}

export function subnetContains(subnet: Subnet, address: string): boolean {
  return (parseIpv4(address) & maskOf(subnet.prefix)) >>> 0 === subnet.network;
}

/** The first of `subnets` holding `address`, by its text; undefined when none does. */
export function subnetOf(address: string, subnets: readonly string[]): string | undefined {
  return subnets.find((s) => subnetContains(parseSubnet(s), address));
}
