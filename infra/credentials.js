'use strict';
// Where the api function's credentials come from, decided from the deploy params (serverless.yml):
//
//   --param="credentials=generate"            mode `generate`: the stack creates a Secrets Manager secret
//                                             with a generated password and webhook secret
//                                             (user: --param="basicAuthUser=…", default labelstudio)
//   --param="credentials=<secret ARN>"        mode `existing`: an existing secret holding the same JSON
//   --param="allowUnauthenticated=true"       mode `unauthenticated`: no credentials at all (explicit opt-out)
//   none of them                              mode `missing`: `sls package`/`sls deploy` stop with MISSING
//                                             (infra/deploy-guard-plugin.js); other commands (print, logs,
//                                             invoke local, remove) still work
//
// infra/credentials.yml holds one fragment per mode (the api function's environment and the stack's
// resources); serverless.yml picks it with ${self:custom.credentials.mode}, resolved by `mode` below.

const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$/;
const USER = /^[A-Za-z0-9._@+-]{1,64}$/;

const OPTIONS = [
  '  --param="credentials=generate"        the stack creates a Secrets Manager secret with a generated password',
  '                                        and webhook secret (user: --param="basicAuthUser=<name>", default labelstudio)',
  '  --param="credentials=<secret ARN>"    use an existing secret whose SecretString is',
  '                                        {"basic_auth_user": "…", "basic_auth_pass": "…", "webhook_secret": "…"}',
  '  --param="allowUnauthenticated=true"   deploy with NO authentication: anyone who finds the URL can predict,',
  '                                        train and write the annotation log',
].join('\n');

const MISSING =
  'No credentials are configured for the API, and the deployment refuses to create an API that anyone can ' +
  'call. Choose one:\n' + OPTIONS + '\n' +
  '(BASIC_AUTH_USER / BASIC_AUTH_PASS are not read at deploy time any more: they would be plain text in the ' +
  'CloudFormation template and the function configuration.)';

function asBool(value) {
  if (value === true || value === false) return value;
  const text = String(value == null ? '' : value).trim().toLowerCase();
  if (text === 'true') return true;
  if (text === 'false' || text === '') return false;
  return null;
}

// { mode, problem }: problem is the message `sls package` fails with (null when the params are usable).
function decide({ credentials, allowUnauthenticated, basicAuthUser }) {
  const secret = String(credentials == null ? '' : credentials).trim();
  const open = asBool(allowUnauthenticated);
  if (open === null) {
    return { mode: 'missing', problem: 'allowUnauthenticated must be "true" or "false".' };
  }
  if (secret && open) {
    return {
      mode: 'missing',
      problem: 'Both credentials and allowUnauthenticated=true are set: choose one (allowUnauthenticated=true ' +
        'deploys an API without any authentication).',
    };
  }
  if (secret === 'generate') {
    const user = String(basicAuthUser == null ? '' : basicAuthUser);
    if (!USER.test(user)) {
      return {
        mode: 'missing',
        problem: 'basicAuthUser must be 1-64 letters, digits or . _ @ + - (no colon: HTTP Basic splits on it).',
      };
    }
    return { mode: 'generate', problem: null };
  }
  if (secret) {
    if (SECRET_ARN.test(secret)) return { mode: 'existing', problem: null };
    return {
      mode: 'missing',
      problem: 'The credentials param is neither "generate" nor the complete ARN of a Secrets Manager secret ' +
        '(arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 characters>; print it with ' +
        '`aws secretsmanager describe-secret --secret-id <name> --query ARN --output text`). Choose one:\n' + OPTIONS,
    };
  }
  if (open) return { mode: 'unauthenticated', problem: null };
  return { mode: 'missing', problem: MISSING };
}

async function params(resolveVariable) {
  const [credentials, allowUnauthenticated, basicAuthUser] = await Promise.all(
    ['credentials', 'allowUnauthenticated', 'basicAuthUser'].map((name) => resolveVariable(`param:${name}`))
  );
  return { credentials, allowUnauthenticated, basicAuthUser };
}

module.exports = {
  // ${file(infra/credentials.js):mode}: the mode's name, never an error (print, logs, remove need no choice).
  mode: async ({ resolveVariable }) => decide(await params(resolveVariable)).mode,
  decide,
  MISSING,
};
