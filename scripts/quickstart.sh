#!/usr/bin/env sh
# A whole month on embedded defaults: SQLite, the sample plans, tenants and events shipped in
# billctl/samples, a preview, the plan of the close (run-monthly --dry-run) and then the close
# itself, twice. Re-runnable: it starts from a fresh file.
set -eu
BILLCTL=${BILLCTL:-billctl}
SAMPLES=$(dirname "$0")/../billctl/samples
export BILLCTL_DATABASE_URL=${BILLCTL_DATABASE_URL:-sqlite:///quickstart.db}
export BILLCTL_ACTOR=${BILLCTL_ACTOR:-quickstart}
# Embedded defaults only: no Redis (usage comes from the sample file) and never a real Stripe
# account, whatever this shell has configured: the close runs with Stripe skipped, with a notice.
export BILLCTL_MONTHLY_DRAIN_STREAM=false
unset STRIPE_API_KEY BILLCTL_STRIPE_API_KEY BILLCTL_STRIPE_API_KEY_FILE BILLCTL_CONFIG
rm -f quickstart.db quickstart.db-wal quickstart.db-shm

if [ -t 2 ] && [ -z "${NO_COLOR:-}" ]; then B='\033[1m'; N='\033[0m'; else B=''; N=''; fi
step() { printf "\n${B}\$ billctl %s${N}\n" "$*" >&2; "$BILLCTL" "$@"; }

step db upgrade
for plan in basic pro business-eur starter-krw; do
  step plans create --file "$SAMPLES/plans/$plan.toml"
done
step tenants create acme     --name "Acme Corp"      --email billing@acme.test     --currency USD --tax-rate 8.25
step tenants create globex   --name "Globex"         --email ap@globex.test        --currency USD --timezone America/New_York
step tenants create initech  --name "Initech GmbH"   --email rechnung@initech.test --currency EUR --timezone Europe/Berlin --tax-rate 19
step tenants create hanbit   --name "Hanbit"         --email billing@hanbit.test   --currency KRW --timezone Asia/Seoul --tax-rate 10
step tenants create tata     --name "Tata Analytics" --email ap@tata.test          --currency USD --timezone Asia/Kolkata
step tenants create umbrella --name "Umbrella"       --email ap@umbrella.test      --currency USD
step tenants assign-plan acme basic --effective 2026-10-01
step tenants assign-plan acme pro --effective 2026-10-16          # mid-month upgrade: two segments
step tenants assign-plan globex pro --effective 2026-10-01
step tenants assign-plan initech business-eur --effective 2026-10-01
step tenants assign-plan hanbit starter-krw --effective 2026-10-01
step tenants assign-plan tata basic --effective 2026-10-01
step tenants assign-plan umbrella pro --effective 2026-10-01
step discounts add umbrella --kind percent --value 10 --from 2026-10-01 --until 2026-12-31 --description "Launch partner 10 %"
step usage import "$SAMPLES/events-2026-10.ndjson"
step usage import "$SAMPLES/events-2026-10.ndjson"                # again: every event_id counts once
step invoices preview --period 2026-10
step run-monthly --period 2026-10 --dry-run                       # the plan of the close; writes nothing
step run-monthly --period 2026-10 --yes                           # the close: finalize, guardrails, (Stripe)
step run-monthly --period 2026-10 --yes                           # again: nothing is finalized or sent twice
step invoices list --period 2026-10
step invoices show INV-2026-10-000001
