// One official Node client's fetchInfo, and what its own model parsed, as JSON on stdout
// (the same shape as client_python.py prints):
//   node client_node.js MODULE_DIR HOST USER PASSWORD NUMBER...
// MODULE_DIR is the installed messente_api package; the client is used as its README shows.
"use strict";

const [moduleDir, host, username, password, ...numbers] = process.argv.slice(2);
const MessenteApi = require(moduleDir);
const version = require(moduleDir + "/package.json").version;

const client = new MessenteApi.ApiClient();
client.basePath = host;
client.authentications.basicAuth.username = username;
client.authentications.basicAuth.password = password;

const mccmnc = (network) => (network == null ? null : network.mccmnc);

new MessenteApi.NumberLookupApi(client).fetchInfo(
  MessenteApi.NumbersToInvestigate.constructFromObject({ numbers }),
  (error, data) => {
    if (error) {
      console.error(error);
      process.exit(1);
    }
    const result = data.result.map((r) => ({
      number: r.number,
      status: r.status,
      ported: r.ported,
      roaming: r.roaming,
      currentNetwork: mccmnc(r.currentNetwork),
      originalNetwork: mccmnc(r.originalNetwork),
      portedNetwork: mccmnc(r.portedNetwork),
      roamingNetwork: mccmnc(r.roamingNetwork),
    }));
    console.log(JSON.stringify({ version, result }));
  },
);
