"""The CloudWatch alarms `sls package` builds (infra/alarms.yml): errors and throttles of the three
functions, dead letters in both dead-letter queues, the age of the oldest message of both work
queues, each notifying one SNS topic both ways (ALARM and OK). Checked on the compiled template of
the shared package build (conftest `packaged`: no alarm params, so the stack creates the topic),
on the resolved configuration of other params (`sls print`, seconds), and on the failures of
unusable params."""

from __future__ import annotations

import pytest

from tests.deploy.cfn import by_type

TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:ops-alarms"
CREATED = [{"Ref": "AlarmTopic"}]
FUNCTION = {"api": "ApiLambdaFunction", "train": "TrainLambdaFunction", "predict": "PredictLambdaFunction"}

# logical id -> (name suffix, namespace, metric, statistic, dimension, threshold)
EXPECTED = {
    "ApiErrorsAlarm": ("api-errors", "AWS/Lambda", "Errors", "Sum", ("FunctionName", {"Ref": "ApiLambdaFunction"}), 0),
    "ApiThrottlesAlarm": ("api-throttles", "AWS/Lambda", "Throttles", "Sum", ("FunctionName", {"Ref": "ApiLambdaFunction"}), 0),
    "TrainErrorsAlarm": ("train-errors", "AWS/Lambda", "Errors", "Sum", ("FunctionName", {"Ref": "TrainLambdaFunction"}), 0),
    "TrainThrottlesAlarm": ("train-throttles", "AWS/Lambda", "Throttles", "Sum", ("FunctionName", {"Ref": "TrainLambdaFunction"}), 0),
    "PredictErrorsAlarm": ("predict-errors", "AWS/Lambda", "Errors", "Sum", ("FunctionName", {"Ref": "PredictLambdaFunction"}), 0),
    "PredictThrottlesAlarm": ("predict-throttles", "AWS/Lambda", "Throttles", "Sum",
                              ("FunctionName", {"Ref": "PredictLambdaFunction"}), 0),
    "TrainDeadLettersAlarm": ("train-dead-letters", "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum",
                              ("QueueName", {"Fn::GetAtt": ["TrainDeadLetterQueue", "QueueName"]}), 0),
    "PredictDeadLettersAlarm": ("predict-dead-letters", "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum",
                                ("QueueName", {"Fn::GetAtt": ["PredictDeadLetterQueue", "QueueName"]}), 0),
    "TrainQueueAgeAlarm": ("train-queue-age", "AWS/SQS", "ApproximateAgeOfOldestMessage", "Maximum",
                           ("QueueName", {"Fn::GetAtt": ["TrainQueue", "QueueName"]}), 3600),
    "PredictQueueAgeAlarm": ("predict-queue-age", "AWS/SQS", "ApproximateAgeOfOldestMessage", "Maximum",
                             ("QueueName", {"Fn::GetAtt": ["PredictQueue", "QueueName"]}), 3600),
}


def alarms(resources: dict) -> dict[str, dict]:
    return {name: r["Properties"] for name, r in by_type(resources, "AWS::CloudWatch::Alarm").items()}


def test_the_package_holds_every_alarm_with_its_metric_dimension_and_threshold(packaged):
    found = alarms(packaged.resources)
    assert set(found) == set(EXPECTED)
    for name, (suffix, namespace, metric, statistic, (dimension, value), threshold) in EXPECTED.items():
        alarm = found[name]
        assert alarm["AlarmName"] == f"ls-textcls-ci-{suffix}", name
        assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (namespace, metric, statistic), name
        assert alarm["Dimensions"] == [{"Name": dimension, "Value": value}], name
        assert alarm["Threshold"] == threshold and alarm["ComparisonOperator"] == "GreaterThanThreshold", name
        assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["TreatMissingData"]) == (300, 1, "notBreaching"), name
        # Every dimension names a resource of this stack (a typo would alarm on nothing, silently).
        target = value.get("Ref") or value["Fn::GetAtt"][0]
        assert target in packaged.resources, name


def test_every_alarm_notifies_the_created_topic_both_ways_and_says_what_to_do(packaged):
    resources, outputs = packaged.resources, packaged.outputs
    topic = resources["AlarmTopic"]
    assert topic["Type"] == "AWS::SNS::Topic" and topic["Properties"]["TopicName"] == "ls-textcls-ci-alarms"
    assert topic["Properties"]["Subscription"] == []  # nobody until alarmEmail or a subscribe
    assert "KmsMasterKeyId" not in topic["Properties"]  # CloudWatch cannot publish to a topic under the AWS-managed key
    for name, alarm in alarms(resources).items():
        assert alarm["AlarmActions"] == alarm["OKActions"] == CREATED, name
        description = alarm["AlarmDescription"]
        assert 'README, "Operations"' in description and len(description) <= 1024, name
    described = alarms(resources)
    for name in ("TrainDeadLettersAlarm", "TrainErrorsAlarm"):
        assert "python -m functions.cli dead-letters --queue train" in described[name]["AlarmDescription"]
    for name in ("PredictDeadLettersAlarm", "PredictErrorsAlarm"):
        assert "python -m functions.cli dead-letters --queue predict" in described[name]["AlarmDescription"]
    assert "--redrive" in described["TrainDeadLettersAlarm"]["AlarmDescription"]
    assert "npx sls logs -f train --stage ci" in described["TrainErrorsAlarm"]["AlarmDescription"]
    assert outputs["AlarmTopicArn"]["Value"] == {"Ref": "AlarmTopic"}
    assert "aws sns subscribe" in str(outputs["SubscribeToAlarmsCommand"]["Value"])
    assert "alarms: nobody is subscribed to the alarm topic" in packaged.log  # the deployer is told


def test_an_existing_topic_is_used_and_no_topic_is_created(sls_print):
    config = sls_print("allowUnauthenticated=true", f"alarmTopic={TOPIC_ARN}", "trainQueueAgeAlarm=7200",
                       "predictQueueAgeAlarm=900")
    resources, outputs = config["resources"]["Resources"], config["resources"]["Outputs"]
    assert not by_type(resources, "AWS::SNS::Topic") and not by_type(resources, "AWS::SNS::Subscription")
    found = alarms(resources)
    assert set(found) == set(EXPECTED)
    for name, alarm in found.items():
        assert alarm["AlarmActions"] == alarm["OKActions"] == [TOPIC_ARN], name
    assert found["TrainQueueAgeAlarm"]["Threshold"] == 7200 and "7200 s" in found["TrainQueueAgeAlarm"]["AlarmDescription"]
    assert found["PredictQueueAgeAlarm"]["Threshold"] == 900
    assert outputs["AlarmTopicArn"]["Value"] == TOPIC_ARN and "SubscribeToAlarmsCommand" not in outputs


def test_an_alarm_email_subscribes_to_the_created_topic(sls_print):
    config = sls_print("allowUnauthenticated=true", "alarmEmail=ops@example.org")
    topic = config["resources"]["Resources"]["AlarmTopic"]["Properties"]
    assert topic["Subscription"] == [{"Protocol": "email", "Endpoint": "ops@example.org"}]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (["alarmTopic=ops-alarms"], "alarmTopic must be the complete ARN of an SNS topic"),
        (["alarmTopic=arn:aws:sqs:us-east-1:123456789012:ops-alarms"], "alarmTopic must be the complete ARN of an SNS topic"),
        (["alarmTopic=arn:aws:sns:eu-west-1:123456789012:ops-alarms"],
         "alarmTopic is a topic in eu-west-1 but the stack deploys to us-east-1"),
        ([f"alarmTopic={TOPIC_ARN}", "alarmEmail=ops@example.org"], "alarmEmail subscribes an address to the topic the stack creates"),
        (["alarmEmail=ops"], 'alarmEmail must be one e-mail address, not "ops"'),
        (["trainQueueAgeAlarm=30"], 'trainQueueAgeAlarm must be a whole number of seconds from 60 to 1209600, not "30"'),
        (["predictQueueAgeAlarm=an hour"], "predictQueueAgeAlarm must be a whole number of seconds"),
    ],
)
def test_unusable_alarm_params_fail_packaging_with_a_clear_message(sls, tmp_path, params, message):
    out = tmp_path / "package"
    done = sls("package", "--package", str(out), "--param=credentials=generate", *(f"--param={p}" for p in params))
    assert done.returncode != 0
    assert message in done.stdout + done.stderr
    assert not out.exists()  # stopped before building anything
