import type { BlockDevice } from "../block/index.ts";
import { BlockDeviceError } from "../block/index.ts";
import { assert, assertionFailed } from "../util/assert.ts";
import type { NodeCache } from "./block-cache.ts";
import { FsError } from "./errors.ts";
import {
  compareKeys,
  INTERNAL_FANOUT_MAX,
  ITEM_VALUE_BYTES_MAX,
  type Key,
  NODE_PAYLOAD_BYTES,
  TREE_HEIGHT_MAX,
} from "./layout.ts";
import {
  type ChildRef,
  cloneNode,
  decodeNode,
  encodeNode,
  type InternalNode,
  isLeaf,
  type LeafNode,
  leafItemBytes,
  newLeaf,
  type TreeNode,
} from "./tree-node.ts";

interface PathStep {
  readonly node: TreeNode;
  /** Index of the child taken below this node; -1 at the leaf. */
  readonly index: number;
}

/** Returns false to stop a scan. */
export type ItemVisitor = (k: Key, value: Uint8Array) => boolean;

/** Index of the child whose key range holds `k`: the last separator <= k (the first child is open below). */
function childIndex(node: InternalNode, k: Key): number {
  let lo = 0;
  let hi = node.keys.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (compareKeys(node.keys[mid]!, k) <= 0) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** First index whose key is >= k. */
function lowerBound(keys: readonly Key[], k: Key): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (compareKeys(keys[mid]!, k) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function nodeBytes(node: TreeNode): number {
  return isLeaf(node)
    ? node.payloadBytes
    : (node as InternalNode).children.length * (NODE_PAYLOAD_BYTES / INTERNAL_FANOUT_MAX);
}

function overflows(node: TreeNode): boolean {
  return isLeaf(node)
    ? node.payloadBytes > NODE_PAYLOAD_BYTES
    : (node as InternalNode).children.length > INTERNAL_FANOUT_MAX;
}

/**
 * The copy-on-write B+tree that holds every item of a volume. A committed node is never changed in
 * place: the first change in a transaction group copies it (and reports its block as freed); the
 * commit writes the changed nodes to new blocks, bottom-up, each parent recording its children's checksums.
 */
export class CowTree {
  root: ChildRef;
  /** Nodes changed in the open transaction group (an estimate between commits). */
  dirtyNodeCount = 0;
  private readonly loading = new Map<number, Promise<TreeNode>>();

  private readonly device: BlockDevice;
  private readonly cache: NodeCache;
  /** Called when a committed block stops being part of the tree in the open transaction group. */
  private readonly onBlockReleased: (blockIndex: number) => void;

  constructor(
    device: BlockDevice,
    cache: NodeCache,
    root: ChildRef,
    onBlockReleased: (blockIndex: number) => void,
  ) {
    this.device = device;
    this.cache = cache;
    this.onBlockReleased = onBlockReleased;
    this.root = root;
    if (root.dirty !== null) this.dirtyNodeCount = 1;
  }

  static empty(
    device: BlockDevice,
    cache: NodeCache,
    onBlockReleased: (blockIndex: number) => void,
  ): CowTree {
    return new CowTree(device, cache, { block: -1, crc: 0, dirty: newLeaf() }, onBlockReleased);
  }

  /** The node a reference points to: the dirty copy, or the committed node from cache or device. */
  load(ref: ChildRef): Promise<TreeNode> {
    const known = this.peek(ref);
    return known !== undefined ? Promise.resolve(known) : this.loadMissing(ref);
  }

  /**
   * The node if it is in memory (dirty or cached), without waiting: walks over cached nodes then
   * cost no promise per level, which is most of a lookup's time in a warm tree.
   */
  private peek(ref: ChildRef): TreeNode | undefined {
    return ref.dirty ?? this.cache.get(ref.block);
  }

  private async loadMissing(ref: ChildRef): Promise<TreeNode> {
    const pending = this.loading.get(ref.block);
    if (pending !== undefined) return pending;
    const promise = this.readNode(ref.block, ref.crc);
    this.loading.set(ref.block, promise);
    try {
      const node = await promise;
      this.cache.set(ref.block, node);
      return node;
    } finally {
      this.loading.delete(ref.block);
    }
  }

  private async readNode(block: number, crc: number): Promise<TreeNode> {
    let bytes: Uint8Array;
    try {
      bytes = await this.device.read(block, 1);
    } catch (error) {
      if (error instanceof BlockDeviceError) {
        throw new FsError("IO", `cannot read metadata block ${block}: ${error.message}`, {
          blockIndex: block,
          cause: error,
        });
      }
      throw error;
    }
    return decodeNode(bytes, block, crc);
  }

  async get(k: Key): Promise<Uint8Array | undefined> {
    let node = this.peek(this.root) ?? (await this.loadMissing(this.root));
    for (let depth = 0; !isLeaf(node); depth++) {
      assert(depth <= TREE_HEIGHT_MAX, "tree deeper than its bound");
      const internal = node as InternalNode;
      const child = internal.children[childIndex(internal, k)]!;
      node = this.peek(child) ?? (await this.loadMissing(child));
    }
    const i = lowerBound(node.keys, k);
    return i < node.keys.length && compareKeys(node.keys[i]!, k) === 0 ? node.values[i] : undefined;
  }

  /** Visits items with from <= key <= to in key order until the visitor returns false. Never mutate during a scan. */
  async scan(from: Key, to: Key, visit: ItemVisitor): Promise<void> {
    await this.scanRef(this.root, from, to, visit);
  }

  private async scanRef(ref: ChildRef, from: Key, to: Key, visit: ItemVisitor): Promise<boolean> {
    const node = await this.load(ref);
    if (isLeaf(node)) {
      for (let i = lowerBound(node.keys, from); i < node.keys.length; i++) {
        const k = node.keys[i]!;
        if (compareKeys(k, to) > 0) return false;
        if (!visit(k, node.values[i]!)) return false;
      }
      return true;
    }
    const internal = node as InternalNode;
    for (let i = childIndex(internal, from); i < internal.children.length; i++) {
      if (i > 0 && compareKeys(internal.keys[i]!, to) > 0) return false;
      if (!(await this.scanRef(internal.children[i]!, from, to, visit))) return false;
    }
    return true;
  }

  /** Inserts or replaces the item at `k`. */
  async put(k: Key, value: Uint8Array): Promise<void> {
    if (!(value.length <= ITEM_VALUE_BYTES_MAX))
      assertionFailed(`item value of ${value.length} bytes exceeds the bound`);
    const path = await this.writablePath(k, true);
    const leaf = path[path.length - 1]!.node as LeafNode;
    const i = lowerBound(leaf.keys, k);
    if (i < leaf.keys.length && compareKeys(leaf.keys[i]!, k) === 0) {
      leaf.payloadBytes += value.length - leaf.values[i]!.length;
      leaf.values[i] = value;
    } else {
      leaf.keys.splice(i, 0, k);
      leaf.values.splice(i, 0, value);
      leaf.payloadBytes += leafItemBytes(value);
    }
    this.splitOverflowing(path);
  }

  /** Removes the item at `k`; returns whether it existed. */
  async delete(k: Key): Promise<boolean> {
    if ((await this.get(k)) === undefined) return false;
    const path = await this.writablePath(k, false);
    const leaf = path[path.length - 1]!.node as LeafNode;
    const i = lowerBound(leaf.keys, k);
    assert(
      i < leaf.keys.length && compareKeys(leaf.keys[i]!, k) === 0,
      "deleted key vanished during descent",
    );
    leaf.payloadBytes -= leafItemBytes(leaf.values[i]!);
    leaf.keys.splice(i, 1);
    leaf.values.splice(i, 1);
    await this.rebalance(path);
    return true;
  }

  /**
   * Copies every node from the root to the leaf for `k` into the open transaction group. When
   * `inserting`, a key below a node's first separator lowers it, so that every separator stays a
   * true lower bound of its subtree and a later split can never insert one out of order.
   */
  private async writablePath(k: Key, inserting: boolean): Promise<PathStep[]> {
    const path: PathStep[] = [];
    let ref = this.root;
    for (;;) {
      assert(path.length <= TREE_HEIGHT_MAX, "tree deeper than its bound");
      const node = ref.dirty ?? this.dirtyFromCache(ref) ?? (await this.makeDirty(ref));
      if (isLeaf(node)) {
        path.push({ node, index: -1 });
        return path;
      }
      const index = childIndex(node as InternalNode, k);
      if (inserting && index === 0 && compareKeys(k, node.keys[0]!) < 0) node.keys[0] = k;
      path.push({ node, index });
      ref = (node as InternalNode).children[index]!;
    }
  }

  private async makeDirty(ref: ChildRef): Promise<TreeNode> {
    if (ref.dirty !== null) return ref.dirty;
    const committed = await this.load(ref);
    if (ref.dirty !== null) return ref.dirty;
    return this.dirtyCopy(ref, committed);
  }

  /** makeDirty without waiting, when the committed node is cached; undefined when it is not. */
  private dirtyFromCache(ref: ChildRef): TreeNode | undefined {
    const committed = this.cache.get(ref.block);
    return committed === undefined ? undefined : this.dirtyCopy(ref, committed);
  }

  private dirtyCopy(ref: ChildRef, committed: TreeNode): TreeNode {
    assert(ref.dirty === null, "a node made dirty twice in one transaction group");
    const copy = cloneNode(committed);
    this.cache.forget(ref.block);
    this.onBlockReleased(ref.block);
    ref.dirty = copy;
    ref.block = -1;
    ref.crc = 0;
    this.dirtyNodeCount++;
    return copy;
  }

  private splitOverflowing(path: PathStep[]): void {
    for (let level = path.length - 1; level >= 0; level--) {
      const node = path[level]!.node;
      if (!overflows(node)) return;
      const right = splitNode(node);
      this.dirtyNodeCount++;
      const rightRef: ChildRef = { block: -1, crc: 0, dirty: right };
      if (level === 0) {
        const newRoot: InternalNode = {
          level: node.level + 1,
          keys: [node.keys[0]!, right.keys[0]!],
          children: [{ block: -1, crc: 0, dirty: node }, rightRef],
          addr: -1,
        };
        assert(newRoot.level <= TREE_HEIGHT_MAX, "tree grew past its height bound");
        this.root = { block: -1, crc: 0, dirty: newRoot };
        this.dirtyNodeCount++;
        return;
      }
      const parentStep = path[level - 1]!;
      const parent = parentStep.node as InternalNode;
      parent.keys.splice(parentStep.index + 1, 0, right.keys[0]!);
      parent.children.splice(parentStep.index + 1, 0, rightRef);
    }
  }

  private async rebalance(path: PathStep[]): Promise<void> {
    for (let level = path.length - 1; level > 0; level--) {
      const node = path[level]!.node;
      const parentStep = path[level - 1]!;
      const parent = parentStep.node as InternalNode;
      const index = parentStep.index;
      if (node.keys.length === 0) {
        parent.keys.splice(index, 1);
        parent.children.splice(index, 1);
        this.dirtyNodeCount--;
        continue;
      }
      if (nodeBytes(node) >= NODE_PAYLOAD_BYTES / 4) break;
      if (!(await this.mergeWithSibling(parent, index, node))) break;
    }
    await this.collapseRoot();
  }

  /** Merges an underfull node with a neighbour when both fit in one node; returns whether it did. */
  private async mergeWithSibling(parent: InternalNode, index: number, node: TreeNode): Promise<boolean> {
    for (const siblingIndex of [index + 1, index - 1]) {
      if (siblingIndex < 0 || siblingIndex >= parent.children.length) continue;
      const siblingRef = parent.children[siblingIndex]!;
      const peek = await this.load(siblingRef);
      if (nodeBytes(peek) + nodeBytes(node) > NODE_PAYLOAD_BYTES) continue;
      const sibling = await this.makeDirty(siblingRef);
      const [left, right, rightIndex] =
        siblingIndex > index ? [node, sibling, siblingIndex] : [sibling, node, index];
      appendNode(left, right);
      parent.keys.splice(rightIndex, 1);
      parent.children.splice(rightIndex, 1);
      this.dirtyNodeCount--;
      return true;
    }
    return false;
  }

  private async collapseRoot(): Promise<void> {
    for (;;) {
      const root = await this.load(this.root);
      if (isLeaf(root) || (root as InternalNode).children.length !== 1) return;
      assert(this.root.dirty !== null, "collapsing a root that was not changed");
      this.root = (root as InternalNode).children[0]!;
      this.dirtyNodeCount--;
    }
  }

  /** Dirty nodes that have no block yet (commit phase one). */
  unaddressedNodes(): TreeNode[] {
    const out: TreeNode[] = [];
    const visit = (ref: ChildRef): void => {
      const node = ref.dirty;
      if (node === null) return;
      if (node.addr < 0) out.push(node);
      if (!isLeaf(node)) for (const child of (node as InternalNode).children) visit(child);
    };
    visit(this.root);
    return out;
  }

  /**
   * Commit phase two: serializes every dirty node bottom-up (each already has its block), records
   * blocks and checksums in the parents, and hands the committed nodes to the cache.
   */
  finalize(txg: number): Array<{ block: number; bytes: Uint8Array }> {
    const out: Array<{ block: number; bytes: Uint8Array }> = [];
    const visit = (ref: ChildRef): void => {
      const node = ref.dirty;
      if (node === null) return;
      if (!isLeaf(node)) for (const child of (node as InternalNode).children) visit(child);
      assert(node.addr >= 0, "finalizing a node without a block");
      const { bytes, crc } = encodeNode(node, node.addr, txg);
      out.push({ block: node.addr, bytes });
      ref.block = node.addr;
      ref.crc = crc;
      ref.dirty = null;
      this.cache.set(node.addr, node);
    };
    visit(this.root);
    this.dirtyNodeCount = 0;
    return out;
  }
}

function splitNode(node: TreeNode): TreeNode {
  if (isLeaf(node)) {
    const sizes = node.values.map(leafItemBytes);
    const total = node.payloadBytes;
    let best = 1;
    let bestWorst = Number.POSITIVE_INFINITY;
    let left = 0;
    for (let m = 1; m < sizes.length; m++) {
      left += sizes[m - 1]!;
      const worst = Math.max(left, total - left);
      if (worst < bestWorst) {
        bestWorst = worst;
        best = m;
      }
    }
    const right: LeafNode = newLeaf();
    right.keys = node.keys.splice(best);
    right.values = node.values.splice(best);
    right.payloadBytes = right.values.reduce((sum, v) => sum + leafItemBytes(v), 0);
    node.payloadBytes -= right.payloadBytes;
    assert(
      node.payloadBytes <= NODE_PAYLOAD_BYTES && right.payloadBytes <= NODE_PAYLOAD_BYTES,
      "split left an overfull leaf",
    );
    return right;
  }
  const internal = node as InternalNode;
  const m = internal.children.length >> 1;
  return {
    level: internal.level,
    keys: internal.keys.splice(m),
    children: internal.children.splice(m),
    addr: -1,
  };
}

function appendNode(left: TreeNode, right: TreeNode): void {
  assert(left.level === right.level, "merging nodes of different levels");
  left.keys.push(...right.keys);
  if (isLeaf(left)) {
    const r = right as LeafNode;
    left.values.push(...r.values);
    left.payloadBytes += r.payloadBytes;
  } else {
    (left as InternalNode).children.push(...(right as InternalNode).children);
  }
}
