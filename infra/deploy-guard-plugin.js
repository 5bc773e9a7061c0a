'use strict';
// Serverless plugin:
//  1. `sls package` and `sls deploy` (which packages first) stop, before anything is built or
//     uploaded, unless the API's credentials are configured or explicitly opted out of
//     (infra/credentials.js explains the params). `sls deploy function` is checked too. Other
//     commands (print, info, logs, invoke local, remove) are not: they create no API.
//  2. `sls invoke local` runs without the stack's AWS-only settings: the environment it gives the
//     handler leaves out CREDENTIALS_SECRET (a CloudFormation Ref with a generated secret, which
//     invoke local would try to look up in the deployed stack) and MODEL_SIGNING_KMS_KEY (a KMS
//     alias), so a local run signs with the local store's key, and LABEL_STUDIO_API_KEY_SECRET (a
//     secret's ARN). PREDICT_QUEUE (a Ref to the stack's queue) becomes `none`: prediction runs wait
//     in the store. `-e NAME=value` still sets any of them.
//  3. a labelStudioApiKeySecret param that is not a Secrets Manager ARN stops package/deploy too.
//  4. so do unusable alarm params (infra/alarms.js: alarmTopic not an SNS topic ARN of the stack's Region, …).
const { decide } = require('./credentials');
const alarms = require('./alarms');

const AWS_ONLY = ['CREDENTIALS_SECRET', 'MODEL_SIGNING_KMS_KEY', 'LABEL_STUDIO_API_KEY_SECRET'];
const LOCAL_VALUES = { PREDICT_QUEUE: 'none' };
const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$/;

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
      for (const [name, value] of Object.entries(LOCAL_VALUES)) {
        if (name in environment) environment[name] = value;
      }
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
    const labelStudio = (this.serverless.service.custom || {}).labelStudio || {};
    const apiKeySecret = String(labelStudio.apiKeySecret == null ? '' : labelStudio.apiKeySecret).trim();
    if (apiKeySecret && !SECRET_ARN.test(apiKeySecret)) {
      const ServerlessError = this.serverless.classes.Error;
      throw new ServerlessError(
        'labelStudioApiKeySecret must be the complete ARN of a Secrets Manager secret whose SecretString is the ' +
          'Label Studio access token (arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 characters>)',
        'LABEL_STUDIO_SECRET_INVALID'
      );
    }
    if (Boolean(apiKeySecret) !== Boolean(String(labelStudio.url || '').trim())) {
      this.serverless.cli.log('label studio: labelStudioUrl and labelStudioApiKeySecret work together; with only one ' +
        'of them set, Start Training does not pull from Label Studio and no prediction run can start');
    }
    const alarmParams = (this.serverless.service.custom || {}).alarms || {};
    const alarmChoice = alarms.decide({ ...alarmParams, region: this.serverless.service.provider.region });
    if (alarmChoice.problem) {
      const ServerlessError = this.serverless.classes.Error;
      throw new ServerlessError(alarmChoice.problem, 'ALARM_PARAMS_INVALID');
    }
    if (alarmChoice.mode === 'create' && !String(alarmParams.email || '').trim()) {
      this.serverless.cli.log('alarms: nobody is subscribed to the alarm topic the stack creates; pass ' +
        '--param="alarmEmail=<address>", or run the SubscribeToAlarmsCommand output after deploying');
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
