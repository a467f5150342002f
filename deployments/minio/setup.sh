#!/bin/sh
# Create the bucket, the four least-privilege policies and their users on a MinIO server.
# Idempotent: safe to run again (existing users get their secret reset, policies are replaced).
#
#   usage: setup.sh <minio-url>          e.g. setup.sh https://minio.internal:9000
#
# Reads from the environment (never from arguments, so secrets stay out of `ps`):
#   MINIO_ROOT_USER, MINIO_ROOT_PASSWORD         admin credentials (used only here)
#   MLOPS_BUCKET                                 bucket name (default: mlops)
#   MLOPS_<ROLE>_SECRET_KEY for ROLE in INGEST TRAINING SCORING MONITORING
#   MLOPS_WORKER_SECRET_KEY                      user with all four policies (one-worker setup)
# Users are named mlops-<role> and mlops-worker; their access key is the user name.
set -eu

url="${1:?usage: setup.sh <minio-url>}"
bucket="${MLOPS_BUCKET:-mlops}"
here="$(cd "$(dirname "$0")" && pwd)"
policies="$here/policies"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

mc alias set mlops-admin "$url" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing "mlops-admin/$bucket"

for role in ingest training scoring monitoring maintenance; do
    # the policy files name the default bucket "mlops"; re-target them if another is used
    sed "s#arn:aws:s3:::mlops#arn:aws:s3:::$bucket#g" "$policies/$role.json" > "$work/$role.json"
    mc admin policy create mlops-admin "mlops-$role" "$work/$role.json"
done

add_user() {  # add_user <user> <secret> <policy>...
    user="$1"; secret="$2"; shift 2
    if [ -z "$secret" ]; then
        echo "skipping $user: its secret key is not set" >&2
        return 0
    fi
    mc admin user add mlops-admin "$user" "$secret" >/dev/null
    # attaching an already attached policy is an error in mc; detach first keeps this idempotent
    mc admin policy detach mlops-admin "$@" --user "$user" >/dev/null 2>&1 || true
    mc admin policy attach mlops-admin "$@" --user "$user"
}

add_user mlops-ingest "${MLOPS_INGEST_SECRET_KEY:-}" mlops-ingest
add_user mlops-training "${MLOPS_TRAINING_SECRET_KEY:-}" mlops-training
add_user mlops-scoring "${MLOPS_SCORING_SECRET_KEY:-}" mlops-scoring
add_user mlops-monitoring "${MLOPS_MONITORING_SECRET_KEY:-}" mlops-monitoring
# retention (the gc deployment): reads and deletes expired outputs, writes nothing
add_user mlops-maintenance "${MLOPS_MAINTENANCE_SECRET_KEY:-}" mlops-maintenance
add_user mlops-worker "${MLOPS_WORKER_SECRET_KEY:-}" \
    mlops-ingest mlops-training mlops-scoring mlops-monitoring

mc alias remove mlops-admin >/dev/null
echo "bucket $bucket ready; policies mlops-{ingest,training,scoring,monitoring,maintenance} attached"
