'use strict';
// Each function's reserved concurrency, from the params (serverless.yml):
//
//   ${file(infra/concurrency.js):api, null}   apiConcurrency      (default 10)
//   ${file(infra/concurrency.js):train, null} trainConcurrency    (default 2)
//   ${file(infra/concurrency.js):predict, null} predictConcurrency (default 10)
//
// With --param="reservedConcurrency=false" each resolves to nothing (the `null` fallback), so no
// function reserves concurrency: for accounts whose Lambda concurrency quota cannot leave AWS's 100
// unreserved executions plus the reservations (new accounts start at 10). The functions then share the
// account's pool; the SQS event sources' maximumConcurrency still bounds train and predict, and API
// Gateway throttling the api. (A reserved concurrency of 0 would not mean "none": it stops a function.)

function asBool(value) {
  const text = String(value == null ? '' : value).trim().toLowerCase();
  if (text === 'true') return true;
  if (text === 'false') return false;
  throw new Error(`reservedConcurrency must be "true" or "false", not ${JSON.stringify(value)}`);
}

function reserved(param) {
  return async ({ resolveVariable }) => {
    if (!asBool(await resolveVariable('param:reservedConcurrency'))) return null;
    const raw = await resolveVariable(`param:${param}`);
    const value = Number(raw);
    if (!Number.isInteger(value) || value < 1) {
      throw new Error(`${param} must be a whole number of at least 1, not ${JSON.stringify(raw)} ` +
        '(to reserve nothing, pass --param="reservedConcurrency=false")');
    }
    return value;
  };
}

module.exports = {
  api: reserved('apiConcurrency'),
  train: reserved('trainConcurrency'),
  predict: reserved('predictConcurrency'),
};
