#!/usr/bin/env bash
# Whole-command rows/s of two invoicegen installs, alternating, into fresh databases:
# the wall time of `invoicegen seed --users N` (start-up, connecting and the manifest
# included), as a user sees it.
#
#   benchmarks/against_release.sh OLD_BIN NEW_BIN [USERS] [ROUNDS]
#   benchmarks/against_release.sh /tmp/old/.venv/bin .venv/bin 10000 2
#
# OLD_BIN / NEW_BIN: the bin folders of two venvs with invoicegen installed (extras postgres,
# mysql). Databases: a SQLite file in $TMPDIR, and `invoicegen_against_release` on the local
# PostgreSQL (postgres, trust) and MariaDB (root, no password), dropped and made again per run.
set -euo pipefail
old=$1 new=$2 users=${3:-10000} rounds=${4:-2}
name=invoicegen_against_release
file=${TMPDIR:-/tmp}/$name.db
count="SELECT (SELECT COUNT(*) FROM users) + (SELECT COUNT(*) FROM clients)
  + (SELECT COUNT(*) FROM contracts) + (SELECT COUNT(*) FROM invoices)"

fresh() {  # $1 database kind -> its URL on stdout
  case $1 in
    sqlite) rm -f "$file"; echo "sqlite:///$file" ;;
    postgresql)
      psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $name" \
        -c "CREATE DATABASE $name" >/dev/null 2>&1
      echo "postgresql://postgres@127.0.0.1/$name" ;;
    mariadb)
      mariadb -h 127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS $name; CREATE DATABASE $name"
      echo "mysql://root@127.0.0.1/$name" ;;
  esac
}

rows() {  # $1 database kind
  case $1 in
    sqlite) sqlite3 "$file" "$count" ;;
    postgresql) psql -tA -h 127.0.0.1 -U postgres -d "$name" -c "$count" ;;
    mariadb) mariadb -N -h 127.0.0.1 -uroot "$name" -e "$count" ;;
  esac
}

run() {  # $1 bin folder, $2 database kind, $3 label
  local url start end
  url=$(fresh "$2")
  "$1/invoicegen" migrate -d "$url" >/dev/null
  start=$(date +%s.%N)
  "$1/invoicegen" seed --users "$users" --seed 5 -d "$url" -q >/dev/null
  end=$(date +%s.%N)
  python3 -c "import sys; r = int(sys.argv[1]); print(f'{sys.argv[2]:<11} {sys.argv[3]:<4} {r:>10,} rows {r / (float(sys.argv[5]) - float(sys.argv[4])):>10,.0f} rows/s')" \
    "$(rows "$2")" "$2" "$3" "$start" "$end"
}

for kind in sqlite postgresql mariadb; do
  for _ in $(seq "$rounds"); do
    run "$old" "$kind" old
    run "$new" "$kind" new
  done
done
rm -f "$file"
psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $name" >/dev/null 2>&1
mariadb -h 127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS $name"
