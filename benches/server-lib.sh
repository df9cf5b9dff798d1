# Shared by benches/load-compare.sh and benches/server-ab.sh (sourced):
# starting and stopping kyro-server over the benchmark's data directory.
# Expects $bin, $data and $out; sets $server to the server's pid.

# start_server [FLAG...]: the server on $data with the query cache off
# (the load cycles through a fixed query set and would otherwise measure
# cache hits), waiting until it prints `ready`. The polling settings are
# off by default (for shared machines); the benchmark runs on an idle one and
# sets the values its recorded figures were measured with
# (KYRO_BENCH_WORKER_SPIN_US / KYRO_BENCH_IO_SPIN_US override them).
start_server() {
    : > "$out/server.out"
    "$bin/kyro-server" --data-dir "$data" --http-listen 127.0.0.1:0 \
        --set instances.text.query_cache_bytes=0 \
        --set "limits.worker_spin_us=${KYRO_BENCH_WORKER_SPIN_US:-200}" \
        --set "limits.io_spin_us=${KYRO_BENCH_IO_SPIN_US:-25}" \
        "$@" >> "$out/server.out" 2> "$out/server.err" &
    server=$!
    for _ in $(seq 1 600); do
        grep -q '^ready$' "$out/server.out" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "kyro-server did not start" >&2
    exit 1
}

stop_server() {
    kill -TERM "$server"
    wait "$server"
    server=
}
