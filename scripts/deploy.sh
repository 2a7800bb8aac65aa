#!/usr/bin/env bash
# Deploys the pipeline to AWS in one command: builds and packages the Lambda function
# (scripts/package-lambda.sh), uploads it to an artifacts bucket (created if missing),
# deploys deploy/template.yaml with CloudFormation, checks the input bucket's event
# notification, and prints the bucket names and the commands to run a job.
#
#   scripts/deploy.sh STACK EMAIL [options]
#
#   STACK   CloudFormation stack name (letters, digits, -); also the default bucket prefix
#   EMAIL   gets the job emails once the subscription is confirmed
# options:
#   --region REGION           default: $AWS_REGION, $AWS_DEFAULT_REGION, then `aws configure get region`
#   --prefix PREFIX           BucketPrefix: buckets <prefix>-input-<account>-<region>, ... (default: STACK)
#   --artifacts-bucket NAME   where the package goes (default: <prefix>-artifacts-<account>-<region>)
#   --package ZIP             deploy this function.zip instead of building one
#   --binary PATH             package this cloudmerge binary (default: build one in build-lambda/
#                             with -DCLOUDMERGE_STATIC_RUNTIME=ON, as provided.al2023 needs)
#   --allow-newer-glibc       passed to package-lambda.sh (a package that may not start on AL2023)
#   --memory MB               Lambda memory (default 10240)
#   --log-retention-days N    CloudWatch Logs retention (default 30)
#   --enable-emr-serverless   also the EMR Serverless application (deploy/README.md)
#   --work-dir DIR            where the package and generated files go (default: build-lambda/)
#
# Works with the AWS CLI v1 (`pip install awscli`, what scripts/install-deps.sh puts in .venv)
# and v2, from any directory. Credentials as the AWS CLI finds them (environment, profile, role);
# AWS_ENDPOINT_URL points every call elsewhere (the tests deploy into moto that way).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export AWS_PAGER=""  # v2 pages output by default; v1 ignores this

usage() { sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
die() { echo "deploy.sh: $*" >&2; exit 1; }

[[ ${1:-} == -h || ${1:-} == --help ]] && usage 0
[[ $# -ge 2 && $1 != -* && $2 != -* ]] || usage
STACK=$1 EMAIL=$2
shift 2
REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-}}
PREFIX="" ARTIFACTS="" PACKAGE="" BINARY="" MEMORY=10240 RETENTION=30 EMR=false WORK=$ROOT/build-lambda
PACKAGE_ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --allow-newer-glibc|--enable-emr-serverless|-h|--help) ;;
    --*) [[ $# -ge 2 ]] || die "$1 needs a value (scripts/deploy.sh --help)" ;;
  esac
  case "$1" in
    --region) REGION=$2; shift 2 ;;
    --prefix) PREFIX=$2; shift 2 ;;
    --artifacts-bucket) ARTIFACTS=$2; shift 2 ;;
    --package) PACKAGE=$2; shift 2 ;;
    --binary) BINARY=$2; shift 2 ;;
    --allow-newer-glibc) PACKAGE_ARGS+=(--allow-newer-glibc); shift ;;
    --memory) MEMORY=$2; shift 2 ;;
    --log-retention-days) RETENTION=$2; shift 2 ;;
    --enable-emr-serverless) EMR=true; shift ;;
    --work-dir) WORK=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "deploy.sh: unknown option $1" >&2; usage ;;
  esac
done

[[ $STACK =~ ^[A-Za-z][A-Za-z0-9-]{0,127}$ ]] ||
  die "stack name \"$STACK\": use letters, digits and -, starting with a letter"
[[ $EMAIL == *@*.* ]] || die "\"$EMAIL\" does not look like an email address (the job emails go there)"
PREFIX=${PREFIX:-$(tr '[:upper:]' '[:lower:]' <<<"$STACK")}
[[ $PREFIX =~ ^[a-z0-9][a-z0-9-]{2,23}$ ]] ||
  die "bucket prefix \"$PREFIX\": 3-24 characters, lowercase letters, digits and - (give --prefix)"
command -v aws >/dev/null ||
  die "the AWS CLI is not installed: pip install awscli (v1), or AWS CLI v2 from AWS; or use .venv/bin/aws" \
      "after scripts/install-deps.sh (PATH=\$PWD/.venv/bin:\$PATH)"
REGION=${REGION:-$(aws configure get region 2>/dev/null || true)}
[[ -n $REGION ]] || die "no region: give --region REGION or set AWS_REGION"
export AWS_REGION=$REGION AWS_DEFAULT_REGION=$REGION  # v1 reads the second, v2 both
step() { echo "deploy.sh: $*" >&2; }

step "account and credentials"
IDENTITY=$(aws sts get-caller-identity --query '[Account, Arn]' --output text) ||
  die "the AWS CLI has no working credentials (aws sts get-caller-identity failed): aws configure, or set" \
      "AWS_PROFILE / AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
read -r ACCOUNT CALLER_ARN <<<"$IDENTITY"
PARTITION=$(cut -d: -f2 <<<"$CALLER_ARN")  # aws, aws-cn, aws-us-gov
ARTIFACTS=${ARTIFACTS:-$PREFIX-artifacts-$ACCOUNT-$REGION}

# 1. The package.
if [[ -z $PACKAGE ]]; then
  PACKAGE=$WORK/function.zip
  if [[ -z $BINARY ]]; then
    step "building the Lambda binary in $ROOT/build-lambda (static libstdc++ for provided.al2023)"
    cmake -S "$ROOT" -B "$ROOT/build-lambda" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCLOUDMERGE_STATIC_RUNTIME=ON \
      -DCLOUDMERGE_BUILD_TESTS=OFF >/dev/null
    cmake --build "$ROOT/build-lambda" --target cloudmerge >&2
    BINARY=$ROOT/build-lambda/cloudmerge
  fi
  step "packaging $BINARY"
  "$ROOT/scripts/package-lambda.sh" --binary "$BINARY" --out "$PACKAGE" ${PACKAGE_ARGS[@]+"${PACKAGE_ARGS[@]}"} >&2
fi
[[ -f $PACKAGE ]] || die "no package at $PACKAGE"

# 2. The artifacts bucket and the upload. A key per build: CloudFormation updates the
# function's code only when CodeKey changes.
if ! aws s3api head-bucket --bucket "$ARTIFACTS" >/dev/null 2>&1; then
  step "creating the artifacts bucket $ARTIFACTS"
  if [[ $REGION == us-east-1 ]]; then  # us-east-1 takes no LocationConstraint
    aws s3api create-bucket --bucket "$ARTIFACTS" >/dev/null
  else
    aws s3api create-bucket --bucket "$ARTIFACTS" --create-bucket-configuration LocationConstraint="$REGION" >/dev/null
  fi
  aws s3api put-public-access-block --bucket "$ARTIFACTS" --public-access-block-configuration \
    BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
fi
CODE_KEY=cloudmerge/function-$(sha256sum "$PACKAGE" | cut -c1-16).zip
step "uploading the package to s3://$ARTIFACTS/$CODE_KEY"
aws s3 cp --only-show-errors "$PACKAGE" "s3://$ARTIFACTS/$CODE_KEY"

# 3. The stack.
step "deploying stack $STACK in $REGION (a first deployment takes a few minutes)"
aws cloudformation deploy --template-file "$ROOT/deploy/template.yaml" --stack-name "$STACK" \
  --parameter-overrides BucketPrefix="$PREFIX" CodeBucket="$ARTIFACTS" CodeKey="$CODE_KEY" \
  NotificationEmail="$EMAIL" MemorySize="$MEMORY" LogRetentionDays="$RETENTION" EnableEmrServerless="$EMR" \
  --capabilities CAPABILITY_NAMED_IAM --no-fail-on-empty-changeset >&2
# The names, read from the stack's resources (the same values as its Outputs), in one call.
RESOURCES=$(aws cloudformation list-stack-resources --stack-name "$STACK" \
  --query 'StackResourceSummaries[].[LogicalResourceId,PhysicalResourceId]' --output text)
resource() {
  awk -v id="$1" '$1 == id { print $2 }' <<<"$RESOURCES" | grep . || die "stack $STACK has no resource $1"
}
IN=$(resource InputBucket)
OUT=$(resource OutputBucket)
TOPIC=$(resource NotificationTopic)
QUEUE_URL=$(resource JobQueue)
LOG_GROUP=$(resource FunctionLogGroup)

# 4. The input bucket's event notification (S3 -> the job queue). The stack sets it; if it is
# missing (a tool that skips it, or someone removed it) no upload ever starts a job, so
# say so and give the command that sets it.
NOTIFICATION_FILE=$WORK/$STACK-notification.json
count=$(aws s3api get-bucket-notification-configuration --bucket "$IN" \
  --query 'length(QueueConfigurations || `[]`)' --output text)
if [[ $count == 0 ]]; then
  # The queue's ARN from its URL https://sqs.<region>.amazonaws.com/<account>/<name>.
  QUEUE_ARN=arn:$PARTITION:sqs:$REGION:$ACCOUNT:${QUEUE_URL##*/}
  mkdir -p "$(dirname "$NOTIFICATION_FILE")"
  {  # the template's rules: each input name, plain or compressed
    echo '{"QueueConfigurations": ['
    sep=""
    for name in x_list.txt y_list.txt job.json; do
      for suffix in "" .gz .zst; do
        printf '%s  {"QueueArn": "%s", "Events": ["s3:ObjectCreated:*"], "Filter": {"Key": {"FilterRules": [{"Name": "suffix", "Value": "%s"}]}}}' \
          "$sep" "$QUEUE_ARN" "$name$suffix"
        sep=$',\n'
      done
    done
    printf '\n]}\n'
  } >"$NOTIFICATION_FILE"
  echo "deploy.sh: WARNING: the input bucket $IN has no event notification, so uploads start no job. Set it with:" >&2
  echo "  aws s3api put-bucket-notification-configuration --bucket $IN --notification-configuration file://$NOTIFICATION_FILE" >&2
fi

cat <<EOF
Deployed stack $STACK ($REGION, account $ACCOUNT).
  input bucket:   $IN
  output bucket:  $OUT
  email topic:    $TOPIC  (confirm the subscription email sent to $EMAIL; until then no email is delivered)
  logs:           CloudWatch Logs group $LOG_GROUP
  package:        s3://$ARTIFACTS/$CODE_KEY

Run a job (a job is a folder holding x_list.txt and y_list.txt):
  aws s3 cp x_list.txt s3://$IN/job1/x_list.txt
  aws s3 cp y_list.txt s3://$IN/job1/y_list.txt
Result and report (when the "result ready" email arrives):
  aws s3 cp s3://$OUT/job1/merged.tsv merged.tsv
  aws s3 cp s3://$OUT/job1/report.json -
From Python (pip install the wheel of python/ with boto3):
  cloudmerge.submit("x_list.txt", "y_list.txt", input="s3://$IN/", output="s3://$OUT/")
Logs of the last hour (AWS CLI v1 and v2):
  aws logs filter-log-events --log-group-name $LOG_GROUP --start-time \$(( (\$(date +%s) - 3600) * 1000 )) --query 'events[].message' --output text
EOF
