#!/usr/bin/env bash
# Lints the deployment: `sam validate --lint` (SAM's transform plus cfn-lint) and cfn-lint on the
# template as written. Offline; installs the SAM CLI into its own virtualenv (.venv-sam) on first use,
# since it pins click/boto3 versions that would clash with other Python tools.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-sam
template=template.yaml
region=${AWS_REGION:-us-east-1}

if [ ! -x "$venv/bin/sam" ] || [ ! -x "$venv/bin/cfn-lint" ]; then
  echo "Installing the AWS SAM CLI into $venv (about a minute)..."
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check aws-sam-cli
fi

export SAM_CLI_TELEMETRY=0

echo "sam validate --lint"
"$venv/bin/sam" validate --lint --template "$template" --region "$region"

echo "cfn-lint"
"$venv/bin/cfn-lint" "$template"

echo "template OK"
