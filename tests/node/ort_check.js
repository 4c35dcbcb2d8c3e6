// Runs an ONNX model through onnxruntime-node (CPU) for Relay's export test.
// usage: node ort_check.js MODEL.onnx IN.f32 BATCH IN_DIM OUT.f32
// IN.f32 holds BATCH*IN_DIM little-endian float32 values; the first output is written to OUT.f32.
// Prints one line: "ok input=<name> output=<name> dims=<d0>x<d1>".
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const [model, inPath, batchStr, inDimStr, outPath] = process.argv.slice(2);
  if (!outPath) {
    console.error('usage: node ort_check.js MODEL.onnx IN.f32 BATCH IN_DIM OUT.f32');
    process.exit(2);
  }
  const batch = parseInt(batchStr, 10);
  const inDim = parseInt(inDimStr, 10);
  const buf = fs.readFileSync(inPath);
  const x = new Float32Array(buf.buffer, buf.byteOffset, batch * inDim);
  const opts = { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all' };
  const session = await ort.InferenceSession.create(model, opts);
  const feeds = {};
  feeds[session.inputNames[0]] = new ort.Tensor('float32', Float32Array.from(x), [batch, inDim]);
  const result = await session.run(feeds);
  const y = result[session.outputNames[0]];
  fs.writeFileSync(outPath, Buffer.from(new Float32Array(y.data).buffer));
  console.log(`ok input=${session.inputNames[0]} output=${session.outputNames[0]} ` +
              `dims=${y.dims.join('x')}`);
}

main().catch((e) => {
  console.error('ort_check failed:', e && e.message ? e.message : e);
  process.exit(1);
});
