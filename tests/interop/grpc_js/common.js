'use strict';
// Shared by client.js and server.js: loads the Echo service and converts
// metadata and messages to JSON-friendly values (bytes as base64).
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

function loadEcho(protoPath) {
  const definition = protoLoader.loadSync(protoPath, {
    keepCase: true,
    longs: String,
    enums: Number,
    defaults: true,
  });
  return grpc.loadPackageDefinition(definition).h2rpc.test.Echo;
}

// Metadata as [[key, value], ...] in order; binary values as base64.
function metadataPairs(metadata) {
  const pairs = [];
  if (!metadata) return pairs;
  for (const [key, values] of Object.entries(metadata.toJSON())) {
    for (const value of values) {
      pairs.push([key, Buffer.isBuffer(value) ? value.toString('base64') : value]);
    }
  }
  return pairs;
}

function responseJson(response) {
  return {
    message: response.message,
    payload: Buffer.from(response.payload || []).toString('base64'),
    index: response.index,
  };
}

function emit(object) {
  process.stdout.write(JSON.stringify(object) + '\n');
}

module.exports = { grpc, loadEcho, metadataPairs, responseJson, emit };
