"""The floor under any split on this host: one OIP v2 ModelInfer round trip over loopback,
with no tierml code on either side, against a raw TCP round trip of the same bytes.

A server process answering ModelInfer at once (tritonclient's generated stubs, grpcio's
thread-pool server, the options the tier servers use) and a client sending payloads of
several sizes after idle gaps of several lengths: a split request meets the tier after the
device has computed its head (the gap), so the gap is part of what a hop costs. Interleaved
(every size × gap once per round), medians.

    .venv/bin/python benchmarks/oip_floor.py [--rounds 150] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent import futures

import grpc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from tierml.runtime.transport import CHANNEL_OPTIONS

SIZES = (64, 16_384, 150_528)  # bytes: a tiny tensor, a small one, ResNet-18's cut at 112 px
GAPS_MS = (0, 5, 20)


class Answer(pb_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    def ModelInfer(self, request, context):
        return pb.ModelInferResponse(model_name=request.model_name, id=request.id)


def serve_grpc(port: int) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=CHANNEL_OPTIONS)
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(Answer(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def serve_tcp(port: int) -> None:
    """Read a 4-byte length and that many bytes, answer one byte."""
    listener = socket.create_server(("127.0.0.1", port))
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        head = conn.recv(4, socket.MSG_WAITALL)
        if len(head) < 4:
            return
        n, got = int.from_bytes(head, "little"), 0
        while got < n:
            got += len(conn.recv(min(1 << 20, n - got)))
        conn.sendall(b"k")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    gport, tport = free_port(), free_port()
    procs = [
        subprocess.Popen([sys.executable, __file__, "--serve-grpc", str(gport)]),
        subprocess.Popen([sys.executable, __file__, "--serve-tcp", str(tport)]),
    ]
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{gport}", options=CHANNEL_OPTIONS)
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for _ in range(100):
            try:
                sock = socket.create_connection(("127.0.0.1", tport))
                break
            except ConnectionRefusedError:
                time.sleep(0.05)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        requests, frames = {}, {}
        for n in SIZES:
            req = pb.ModelInferRequest(model_name="floor")
            req.inputs.add(name="x", datatype="UINT8", shape=[n])
            req.raw_input_contents.append(bytes(n))
            requests[n], frames[n] = req, n.to_bytes(4, "little") + bytes(n)
        times: dict[tuple[str, int, int], list[float]] = {}
        for r in range(args.rounds + 10):  # the first 10 rounds warm up
            for n in SIZES:
                for gap in GAPS_MS:
                    for kind in ("oip", "tcp"):
                        if gap:
                            time.sleep(gap / 1e3)
                        start = time.perf_counter()
                        if kind == "oip":
                            stub.ModelInfer(requests[n])
                        else:
                            sock.sendall(frames[n])
                            sock.recv(1)
                        if r >= 10:
                            ms = (time.perf_counter() - start) * 1e3
                            times.setdefault((kind, n, gap), []).append(ms)
    finally:
        for p in procs:
            p.kill()
    rows = [
        {"transport": k, "bytes": n, "idle_ms": g, "median_ms": statistics.median(v)}
        for (k, n, g), v in sorted(times.items())
    ]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"round trip over loopback, median of {args.rounds} (ms); columns: idle before the call")
    print(f"{'transport':10} {'bytes':>8} " + " ".join(f"{g:>7} ms" for g in GAPS_MS))
    for kind in ("oip", "tcp"):
        for n in SIZES:
            cells = [statistics.median(times[(kind, n, g)]) for g in GAPS_MS]
            print(f"{kind:10} {n:8d} " + " ".join(f"{c:10.3f}" for c in cells))
    print(f"host: {os.cpu_count()} cores; grpcio {grpc.__version__}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-grpc":
        serve_grpc(int(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] == "--serve-tcp":
        serve_tcp(int(sys.argv[2]))
    else:
        main()
