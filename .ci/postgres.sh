# Sourced by .ci/run: a PostgreSQL server for the multi-machine tuning tests.
#
# Installs PostgreSQL from Debian's packages when it is missing, creates (once)
# and starts a cluster named "mlestar" that listens on the loopback interface only, creates
# the role and database the tests use, and exports MLESTAR_TEST_POSTGRES_URL.
# A failure here is reported, not fatal: the PostgreSQL tests then try to start
# a server of their own and skip, saying why, when they cannot. Every step
# checks its own status (`|| return 1`): set -e does not reach into a function
# called from a `||` list.

mlestar_postgres() {
    local cluster=mlestar user=mlestar password=mlestar db=mlestar_test version port
    if ! command -v pg_createcluster >/dev/null 2>&1; then
        echo "postgres: installing PostgreSQL from Debian's packages"
        apt-get update -qq || return 1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null || return 1
    fi
    version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
    port=$(pg_lsclusters -h | awk -v c="$cluster" '$2 == c {print $3}')
    if [ -z "$port" ]; then
        # a port nothing listens on now; the cluster keeps it from then on
        port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        pg_createcluster "$version" "$cluster" --port "$port" >/dev/null || return 1
        pg_conftool "$version" "$cluster" set listen_addresses localhost || return 1
    fi
    pg_ctlcluster "$version" "$cluster" status >/dev/null 2>&1 || pg_ctlcluster "$version" "$cluster" start \
        || return 1
    runuser -u postgres -- psql -q -p "$port" -v ON_ERROR_STOP=1 -c \
        "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$user') THEN
         CREATE ROLE $user LOGIN PASSWORD '$password' CREATEDB; END IF; END \$\$;" >/dev/null || return 1
    if ! runuser -u postgres -- psql -p "$port" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" \
            | grep -q 1; then
        runuser -u postgres -- createdb -p "$port" -O "$user" "$db" || return 1
    fi
    export MLESTAR_TEST_POSTGRES_URL="postgresql+psycopg2://$user:$password@127.0.0.1:$port/$db"
    echo "postgres: PostgreSQL $version cluster '$cluster' on 127.0.0.1:$port, database $db"
}

mlestar_postgres || echo "postgres: could not start a server; the PostgreSQL tests will try their own or skip"
