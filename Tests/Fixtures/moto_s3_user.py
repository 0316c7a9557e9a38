"""moto with its signature checks on: an IAM user allowed S3, its access
key, and a bucket made with that key. Prints the key's id and secret.

Usage: python3 moto_s3_user.py ENDPOINT_URL BUCKET
(run while moto still takes the IAM calls unsigned: INITIAL_NO_AUTH_ACTION_COUNT)
"""
import json
import sys

import boto3

endpoint, bucket = sys.argv[1], sys.argv[2]
kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="AKIASETUP", aws_secret_access_key="x")
iam = boto3.client("iam", **kw)
iam.create_user(UserName="berth")
key = iam.create_access_key(UserName="berth")["AccessKey"]
iam.put_user_policy(UserName="berth", PolicyName="s3", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
kw.update(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
boto3.client("s3", **kw).create_bucket(Bucket=bucket)
print(key["AccessKeyId"], key["SecretAccessKey"])
