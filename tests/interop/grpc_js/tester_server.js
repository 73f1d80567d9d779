'use strict';
// The Tester service of tests/cli/protos/clitest/tester.proto on grpc-js, for
// tests/cli/test_grpc_js.py (the h2rpc CLI against a Node server). It behaves
// as tests/cli/servers.py's Tester: each request's fields say what to do.
// With grpc-health-check's Health service ('sick' NOT_SERVING) and, with
// --reflection, @grpc/reflection's service (v1 and v1alpha).
// Usage: node tester_server.js PROTO_ROOT [--reflection]
// Prints {"ready": port} once listening on 127.0.0.1; stops on SIGTERM/SIGINT.
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { HealthImplementation } = require('grpc-health-check');
const { ReflectionService } = require('@grpc/reflection');

const SERVICE = 'h2rpc.clitest.Tester';

const definition = protoLoader.loadSync('clitest/tester.proto', {
  includeDirs: [process.argv[2]],
  keepCase: true,
  longs: String,
  enums: String,
  oneofs: true,
});
const Tester = grpc.loadPackageDefinition(definition).h2rpc.clitest.Tester;

// The x-* metadata received, as "key=value" (binary values in base64).
function metadataList(metadata) {
  const entries = [];
  for (const [key, values] of Object.entries(metadata.toJSON())) {
    if (!key.startsWith('x-')) continue;
    for (const value of values) {
      entries.push(`${key}=${Buffer.isBuffer(value) ? value.toString('base64') : value}`);
    }
  }
  return entries;
}

function reply(request, index, metadata) {
  return { text: request.text, index, metadata, item: request.item };
}

// Sleep, then fail if asked: resolves to a status error object, or null.
async function prepare(request) {
  if (request.delay_ms) await new Promise((resolve) => setTimeout(resolve, request.delay_ms));
  if (request.status_code) return { code: request.status_code, details: request.status_message };
  return null;
}

const service = {
  async Unary(call, callback) {
    const failure = await prepare(call.request);
    if (failure) return callback(failure);
    callback(null, reply(call.request, 0, metadataList(call.metadata)));
  },

  async ServerStream(call) {
    const failure = await prepare(call.request);
    if (failure) return call.emit('error', failure);
    const metadata = metadataList(call.metadata);
    for (let index = 0; index < (call.request.repeat || 0); index++) {
      call.write(reply(call.request, index, metadata));
    }
    call.end();
  },

  ClientStream(call, callback) {
    const texts = [];
    inOrder(call, async (request) => {
      const failure = await prepare(request);
      if (failure) {
        callback(failure);
        return false;
      }
      texts.push(request.text);
      return true;
    }, () => callback(null, { text: texts.join(','), index: texts.length }));
  },

  Bidi(call) {
    const metadata = metadataList(call.metadata);
    let index = 0;
    inOrder(call, async (request) => {
      const failure = await prepare(request);
      if (failure) {
        call.emit('error', failure);
        return false;
      }
      for (let i = 0; i < Math.max(1, request.repeat || 0); i++) {
        // Written before the next request is handled, so that a failure status
        // that follows is sent after it (the order the tests check).
        await new Promise((resolve) => call.write(reply(request, index++, metadata), resolve));
      }
      return true;
    }, () => call.end());
  },
};

// Handles a call's requests one at a time, in order, until one returns false
// (the call failed); else onEnd once the client half-closed.
function inOrder(call, onRequest, onEnd) {
  let chain = Promise.resolve(true);
  call.on('data', (request) => {
    chain = chain.then((going) => (going === false ? false : onRequest(request)));
  });
  call.on('end', () => {
    chain = chain.then((going) => {
      if (going !== false) onEnd();
    });
  });
  call.on('error', () => {});
}

const server = new grpc.Server();
server.addService(Tester.service, service);
const health = new HealthImplementation({ '': 'SERVING', [SERVICE]: 'SERVING', sick: 'NOT_SERVING' });
health.addToServer(server);
if (process.argv.includes('--reflection')) new ReflectionService(definition).addToServer(server);
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => {
  if (error) {
    process.stdout.write(JSON.stringify({ error: String(error) }) + '\n');
    process.exit(1);
  }
  process.stdout.write(JSON.stringify({ ready: port }) + '\n');
});

function stop() {
  server.forceShutdown();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
