#!/usr/bin/env node
// Builds the RewardDistributor's cumulative Merkle tree with OpenZeppelin's StandardMerkleTree,
// exactly as the contract verifies it: leaves are keccak256(keccak256(abi.encode(address, uint256)))
// hashed in sorted pairs.
//
// Usage:
//   node scripts/merkle-tree.mjs [--json] <account> <amount> [<account> <amount> ...]
//
// <account> is a 0x-prefixed 20-byte hex address; <amount> is the cumulative amount in wei, as a
// decimal integer or a 0x-prefixed hex integer. Each account may appear once (one leaf per
// account: a second leaf would let it claim the larger of two amounts).
//
// Output (stdout, no trailing newline):
//   default  the ABI encoding of `(bytes32 root, bytes32[][] proofs)`, 0x-prefixed hex, with
//            proofs[i] the proof of the i-th <account> <amount> pair. Forge's vm.ffi decodes the
//            hex, so a test reads it with `abi.decode(out, (bytes32, bytes32[][]))`.
//   --json   {"root": "0x..", "proofs": [["0x..", ..], ..], "leaves": [{"account": "0x..",
//            "amount": "<decimal>", "hash": "0x.."}, ..]}, all in input order.
// Errors go to stderr with exit status 2 (usage) or 1 (anything else).

import { StandardMerkleTree } from "@openzeppelin/merkle-tree";

const USAGE = "usage: node scripts/merkle-tree.mjs [--json] <account> <amount> [<account> <amount> ...]";
const UINT256_MAX = (1n << 256n) - 1n;

function fail(message, status = 1) {
  process.stderr.write(`merkle-tree: ${message}\n`);
  process.exit(status);
}

function parseAccount(text) {
  if (!/^0x[0-9a-fA-F]{40}$/.test(text)) fail(`not an address: ${JSON.stringify(text)}`);
  return text.toLowerCase();
}

function parseAmount(text) {
  if (!/^(0x[0-9a-fA-F]+|[0-9]+)$/.test(text)) fail(`not a uint256: ${JSON.stringify(text)}`);
  const value = BigInt(text);
  if (value > UINT256_MAX) fail(`amount exceeds uint256: ${text}`);
  return value;
}

/** One 32-byte ABI word (64 hex digits, no prefix) of a non-negative integer. */
function word(n) {
  return BigInt(n).toString(16).padStart(64, "0");
}

/** A bytes32 as an ABI word (the tree's hex strings are already 32 bytes). */
function bytes32(hex) {
  const digits = hex.replace(/^0x/, "");
  if (digits.length !== 64) fail(`internal error: not a bytes32: ${hex}`);
  return digits.toLowerCase();
}

/**
 * abi.encode(bytes32 root, bytes32[][] proofs): the head holds the root and the offset (0x40) of
 * the outer array; the outer array is its length, then one offset per inner array (relative to
 * the first of those offsets), then each inner array as its length followed by its elements.
 */
function encodeRootAndProofs(root, proofs) {
  const parts = [bytes32(root), word(64), word(proofs.length)];
  let offset = 32 * proofs.length;
  for (const proof of proofs) {
    parts.push(word(offset));
    offset += 32 * (1 + proof.length);
  }
  for (const proof of proofs) {
    parts.push(word(proof.length));
    for (const node of proof) parts.push(bytes32(node));
  }
  return "0x" + parts.join("");
}

function main(argv) {
  const json = argv.includes("--json");
  const args = argv.filter((a) => a !== "--json");
  if (args.includes("-h") || args.includes("--help")) {
    process.stdout.write(USAGE + "\n");
    return;
  }
  if (args.length === 0 || args.length % 2 !== 0) fail(USAGE, 2);

  const values = [];
  const seen = new Set();
  for (let i = 0; i < args.length; i += 2) {
    const account = parseAccount(args[i]);
    if (seen.has(account)) fail(`duplicate account: ${args[i]}`);
    seen.add(account);
    values.push([account, parseAmount(args[i + 1])]);
  }

  const tree = StandardMerkleTree.of(values, ["address", "uint256"]);
  const proofs = values.map((_, i) => tree.getProof(i));

  if (json) {
    const leaves = values.map(([account, amount], i) => ({
      account: args[2 * i],
      amount: amount.toString(),
      hash: tree.leafHash(values[i]),
    }));
    process.stdout.write(JSON.stringify({ root: tree.root, proofs, leaves }));
  } else {
    process.stdout.write(encodeRootAndProofs(tree.root, proofs));
  }
}

main(process.argv.slice(2));
