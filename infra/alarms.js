'use strict';
// Where the CloudWatch alarms of infra/alarms.yml send their notifications, decided from the deploy
// params (serverless.yml):
//
//   --param="alarmTopic=<SNS topic ARN>"   mode `existing`: the alarms notify that topic (same Region as
//                                          the stack: CloudWatch alarms notify topics of their own Region)
//   nothing (the default)                  mode `create`: the stack creates the topic
//                                          <service>-<stage>-alarms and outputs its ARN (AlarmTopicArn)
//   --param="alarmEmail=ops@example.org"   with a created topic, subscribe this address (AWS mails it a
//                                          confirmation link first); with alarmTopic, subscribe it yourself
//   --param="trainQueueAgeAlarm=3600"      seconds the oldest training message may wait (README, "Operations")
//   --param="predictQueueAgeAlarm=3600"    seconds the oldest prediction-run message may wait
//
// ${file(infra/alarms.js):mode} picks the fragment of infra/alarms.yml; ${file(infra/alarms.js):actions}
// is what every alarm's AlarmActions and OKActions hold. Neither ever fails (print, logs, remove need no
// choice): infra/deploy-guard-plugin.js stops `sls package`/`sls deploy` with `decide(...).problem`.

const TOPIC_ARN = /^arn:aws[a-z-]*:sns:([a-z0-9-]+):(\d{12}):[A-Za-z0-9_-]{1,256}(\.fifo)?$/;
const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
const AGE = { min: 60, max: 1209600 };   // SQS reports the age each minute; 14 days is the longest retention

function text(value) {
  return String(value == null ? '' : value).trim();
}

// A threshold param as a number of seconds, or null when it is not a whole number in AGE.
function seconds(value) {
  const raw = text(value);
  const number = Number(raw);
  return /^\d+$/.test(raw) && number >= AGE.min && number <= AGE.max ? number : null;
}

// { mode, problem }: problem is the message `sls package` fails with (null when the params are usable).
function decide({ topic, email, region, trainQueueAge, predictQueueAge }) {
  const arn = text(topic);
  const address = text(email);
  const mode = arn ? 'existing' : 'create';
  const fail = (problem) => ({ mode, problem });
  if (arn) {
    const match = TOPIC_ARN.exec(arn);
    if (!match) {
      return fail('alarmTopic must be the complete ARN of an SNS topic (arn:aws:sns:<region>:<account>:<topic name>; ' +
        'print it with `aws sns list-topics`), or empty to let the stack create the topic ' +
        '<service>-<stage>-alarms. Not: ' + JSON.stringify(arn));
    }
    if (region && match[1] !== region) {
      return fail(`alarmTopic is a topic in ${match[1]} but the stack deploys to ${region}: CloudWatch alarms only ` +
        `notify SNS topics of their own Region; create the topic in ${region}, or leave alarmTopic empty`);
    }
    if (address) {
      return fail('alarmEmail subscribes an address to the topic the stack creates; with alarmTopic, subscribe it to ' +
        'your own topic (aws sns subscribe --topic-arn <alarmTopic> --protocol email --notification-endpoint <address>) ' +
        'and leave alarmEmail empty');
    }
  }
  if (address && !EMAIL.test(address)) {
    return fail(`alarmEmail must be one e-mail address, not ${JSON.stringify(address)}`);
  }
  for (const [name, value] of [['trainQueueAgeAlarm', trainQueueAge], ['predictQueueAgeAlarm', predictQueueAge]]) {
    if (seconds(value) === null) {
      return fail(`${name} must be a whole number of seconds from ${AGE.min} to ${AGE.max}, not ${JSON.stringify(text(value))}`);
    }
  }
  return { mode, problem: null };
}

async function params(resolveVariable) {
  const [topic, email] = await Promise.all(['alarmTopic', 'alarmEmail'].map((name) => resolveVariable(`param:${name}`)));
  return { topic, email };
}

// A threshold for the template: the number when valid, else the raw value (the guard plugin stops packaging).
function threshold(param) {
  return async ({ resolveVariable }) => {
    const raw = await resolveVariable(`param:${param}`);
    const value = seconds(raw);
    return value === null ? text(raw) : value;
  };
}

module.exports = {
  // ${file(infra/alarms.js):mode}: `create` or `existing`, never an error.
  mode: async ({ resolveVariable }) => (text((await params(resolveVariable)).topic) ? 'existing' : 'create'),
  // ${file(infra/alarms.js):actions}: [the created topic's Ref] or [the given ARN].
  actions: async ({ resolveVariable }) => {
    const { topic } = await params(resolveVariable);
    return text(topic) ? [text(topic)] : [{ Ref: 'AlarmTopic' }];
  },
  // ${file(infra/alarms.js):subscriptions}: the created topic's e-mail subscription, if alarmEmail is set.
  subscriptions: async ({ resolveVariable }) => {
    const { email } = await params(resolveVariable);
    return text(email) ? [{ Protocol: 'email', Endpoint: text(email) }] : [];
  },
  trainQueueAge: threshold('trainQueueAgeAlarm'),
  predictQueueAge: threshold('predictQueueAgeAlarm'),
  decide,
};
