"""The shared fixtures themselves: a database really is created and dropped, moto really answers HTTP."""

import boto3


def test_pg_database_is_created_and_dropped(pg_server, pg_database_factory):
    name = pg_database_factory("fixturecheck")
    with pg_server.connect(name) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_database()")
        assert cur.fetchone()[0] == name


def test_moto_server_speaks_s3_over_http(aws_env):
    s3 = boto3.client("s3", endpoint_url=aws_env["AWS_ENDPOINT_URL"])
    s3.create_bucket(Bucket="fixture-check", CreateBucketConfiguration={"LocationConstraint": "us-east-2"})
    s3.put_object(Bucket="fixture-check", Key="k", Body=b"v")
    assert s3.get_object(Bucket="fixture-check", Key="k")["Body"].read() == b"v"
    assert aws_env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
