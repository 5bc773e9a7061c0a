'use strict';
// Serverless plugin:
//  1. `sls package` and `sls deploy` (which packages first) stop, before anything is built or
//     uploaded, unless the API's credentials are configured or explicitly opted out of
//     (infra/credentials.js explains the params). `sls deploy function` is checked too. Other
//     commands (print, info, logs, invoke local, remove) are not: they create no API.
//  2. `sls invoke local` runs without the stack's AWS-only settings: the environment it gives the
//     handler leaves out CREDENTIALS_SECRET (a CloudFormation Ref with a generated secret, which
//     invoke local would try to look up in the deployed stack) and MODEL_SIGNING_KMS_KEY (a KMS
//     alias), so a local run signs with the local store's key. `-e NAME=value` still sets either.
const { decide } = require('./credentials');

const AWS_ONLY = ['CREDENTIALS_SECRET', 'MODEL_SIGNING_KMS_KEY'];

class DeployGuardPlugin {
  constructor(serverless) {
    this.serverless = serverless;
    const check = () => this.check();
    this.hooks = {
      initialize: () => this.localEnvironment(),
      'before:package:cleanup': check,              // the first event of `package`, before .serverless is touched
      'before:deploy:function:initialize': check,
    };
  }

  localEnvironment() {
    const commands = (this.serverless.processedInput || {}).commands || [];
    if (commands.join(' ') !== 'invoke local') return;
    const service = this.serverless.service;
    const environments = [service.provider.environment, ...service.getAllFunctions().map((name) => service.getFunction(name).environment)];
    for (const environment of environments.filter(Boolean)) {
      for (const name of AWS_ONLY) delete environment[name];
    }
  }

  check() {
    const settings = (this.serverless.service.custom || {}).credentials || {};
    const { mode, problem } = decide({
      credentials: settings.secret,
      allowUnauthenticated: settings.allowUnauthenticated,
      basicAuthUser: settings.user,
    });
    if (problem) {
      const ServerlessError = this.serverless.classes.Error;
      throw new ServerlessError(problem, 'CREDENTIALS_NOT_CONFIGURED');
    }
    const log = (message) => this.serverless.cli.log(`credentials: ${message}`);
    if (process.env.BASIC_AUTH_USER || process.env.BASIC_AUTH_PASS) {
      log('BASIC_AUTH_USER / BASIC_AUTH_PASS are set in this shell but the deployment never reads them (the API reads its credentials from Secrets Manager)');
    }
    if (mode === 'unauthenticated') {
      log('WARNING: allowUnauthenticated=true: this API serves anyone who knows its URL');
    } else {
      log(`${mode === 'generate' ? 'a generated' : 'an existing'} Secrets Manager secret (see the ReadCredentialsCommand output)`);
    }
  }
}

module.exports = DeployGuardPlugin;
