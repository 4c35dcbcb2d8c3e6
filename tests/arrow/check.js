#!/usr/bin/env node
// Reads a Relay Arrow IPC file with Apache Arrow JS, checks the file framing, and prints the
// schema, row counts and every value as JSON on stdout (int64 as decimal strings, binary as hex).
// Usage: node check.js FILE        Exit status 1 with a message on stderr when the file is invalid.
'use strict';
const fs = require('fs');
const arrow = require('apache-arrow');

function fail(msg) {
  process.stderr.write('check.js: ' + msg + '\n');
  process.exit(1);
}

function jsonValue(v) {
  if (v === null || v === undefined) return null;
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
  if (typeof v === 'object' && typeof v.length === 'number' && typeof v.get === 'function') {
    const out = [];
    for (let i = 0; i < v.length; i++) out.push(jsonValue(v.get(i)));
    return out;
  }
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  return v;
}

function describeType(t) {
  const d = { str: String(t), typeId: t.typeId, name: arrow.Type[t.typeId] };
  if (t.bitWidth !== undefined) d.bitWidth = t.bitWidth;
  if (t.isSigned !== undefined) d.isSigned = t.isSigned;
  if (t.precision !== undefined) d.precision = t.precision;
  if (t.listSize !== undefined) d.listSize = t.listSize;
  if (t.byteWidth !== undefined) d.byteWidth = t.byteWidth;
  if (t.children && t.children.length) d.child = describeField(t.children[0]);
  return d;
}

function describeField(f) {
  return {
    name: f.name,
    nullable: f.nullable,
    type: describeType(f.type),
    metadata: Object.fromEntries(f.metadata || new Map()),
  };
}

const file = process.argv[2];
if (!file) fail('usage: node check.js FILE');
const bytes = fs.readFileSync(file);
if (bytes.length < 18) fail('file too short');
if (bytes.subarray(0, 6).toString('latin1') !== 'ARROW1') fail('missing leading ARROW1 magic');
if (bytes.subarray(bytes.length - 6).toString('latin1') !== 'ARROW1')
  fail('missing trailing ARROW1 magic');

const reader = arrow.RecordBatchReader.from(bytes);
if (!reader.isFile()) fail('not an Arrow IPC file (stream format?)');
reader.open();
const schema = reader.schema;
const batches = [];
for (const b of reader) batches.push(b);
if (reader.numRecordBatches !== batches.length)
  fail(`footer lists ${reader.numRecordBatches} batches, read ${batches.length}`);

const table = new arrow.Table(schema, batches);
const columns = {};
for (const f of schema.fields) {
  const col = table.getChild(f.name);
  if (!col) fail('missing column ' + f.name);
  if (col.length !== table.numRows) fail(`column ${f.name} has ${col.length} rows`);
  const vals = [];
  for (let i = 0; i < col.length; i++) vals.push(jsonValue(col.get(i)));
  columns[f.name] = vals;
}
const out = {
  format: 'file',
  numRows: table.numRows,
  numBatches: batches.length,
  batchRows: batches.map((b) => b.numRows),
  schema: {
    metadata: Object.fromEntries(schema.metadata || new Map()),
    fields: schema.fields.map(describeField),
  },
  columns,
};
process.stdout.write(JSON.stringify(out) + '\n');
