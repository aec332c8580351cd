"""Drives the fanoutd emulator with boto3 as a user's script would, and prints
what it saw as one JSON object (emulator/clients_test.go checks it).

The environment holds the lines `fanoutd emulator` prints. botocore before
1.31 (Debian 12 ships 1.29) does not read AWS_ENDPOINT_URL_KINESIS, so the
endpoint is passed as endpoint_url, as the README says.
"""
import base64
import json
import os

import boto3
import botocore

kinesis = boto3.client("kinesis", endpoint_url=os.environ["EMULATOR_ENDPOINT"])
out = {}

# The walkthrough: put a record, read it back from TRIM_HORIZON.
put = kinesis.put_record(StreamName="orders", PartitionKey="user1", Data=b"hello, boto3")
it = kinesis.get_shard_iterator(StreamName="orders", ShardId=put["ShardId"],
                                ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
recs = kinesis.get_records(ShardIterator=it)["Records"]
out["walkthrough"] = recs[0]["Data"].decode()

limits = kinesis.describe_limits()
out["limits"] = {k: v for k, v in limits.items() if k != "ResponseMetadata"}

kinesis.add_tags_to_stream(StreamName="orders", Tags={"team": "data", "env": "dev"})
kinesis.remove_tags_from_stream(StreamName="orders", TagKeys=["env"])
tags = kinesis.list_tags_for_stream(StreamName="orders")["Tags"]
out["tags"] = {t["Key"]: t["Value"] for t in tags}

try:
    kinesis.describe_stream(StreamName="nope")
    out["NotFound"] = {}
except kinesis.exceptions.ResourceNotFoundException as e:
    out["NotFound"] = {"Code": e.response["Error"]["Code"], "Message": e.response["Error"]["Message"]}

# Enhanced fan-out: register a consumer and read the shard's events.
stream_arn = kinesis.describe_stream_summary(StreamName="orders")["StreamDescriptionSummary"]["StreamARN"]
consumer = kinesis.register_stream_consumer(StreamARN=stream_arn, ConsumerName="boto3-app")["Consumer"]
kinesis.put_records(StreamName="orders", Records=[
    {"PartitionKey": "user1", "Data": b"event 1"},
    {"PartitionKey": "user1", "Data": b"event 2"},
])
resp = kinesis.subscribe_to_shard(ConsumerARN=consumer["ConsumerARN"], ShardId=put["ShardId"],
                                  StartingPosition={"Type": "TRIM_HORIZON"})
seen, continues = [], False
stream = resp["EventStream"]
for event in stream:
    ev = event["SubscribeToShardEvent"]
    continues = bool(ev.get("ContinuationSequenceNumber"))
    seen.extend(r["Data"].decode() for r in ev["Records"])
    if len(seen) >= 3:
        break
stream.close()
out["subscribed"] = seen
out["continues"] = continues

print(json.dumps(out))
