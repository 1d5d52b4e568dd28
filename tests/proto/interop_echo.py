#!/usr/bin/python3
"""interop_echo.py: Python grpcio (Debian's python3-grpcio) against shoal's C adapter.

Compiles tests/proto/echo.proto with grpc_tools at run time, starts echo_server (the Echo test
service on proto/rpc.h), and checks the wire behaviour a non-C client sees: unary, server and
client streams, bearer-token metadata, status codes and details, deadlines, size limits,
unknown methods, and a clean exit. usage: interop_echo.py ECHO_SERVER_BINARY
"""
import os
import subprocess
import sys
import tempfile

import grpc
from grpc_tools import protoc

here = os.path.dirname(os.path.abspath(__file__))
gen = tempfile.mkdtemp(prefix="shoal-interop-")
if protoc.main(["protoc", f"-I{here}", f"--python_out={gen}", f"--grpc_python_out={gen}",
                os.path.join(here, "echo.proto")]) != 0:
    sys.exit("protoc failed")
sys.path.insert(0, gen)
import echo_pb2  # noqa: E402
import echo_pb2_grpc  # noqa: E402

passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"[ ok ] {name}", file=sys.stderr)
    else:
        failed += 1
        print(f"[FAIL] {name} {detail}", file=sys.stderr)


def code_of(fn):
    try:
        fn()
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details()


server = subprocess.Popen([sys.argv[1]], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
try:
    line = server.stdout.readline().split()
    port = int(line[1])
    ch = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = echo_pb2_grpc.EchoStub(ch)
    auth = [("authorization", "Bearer s3cret-token")]

    r = stub.Say(echo_pb2.EchoRequest(text="hello from python"), metadata=auth, timeout=5)
    check("unary", r.text == "hello from python" and r.principal == "token:tester", str(r))

    items = list(stub.Count(echo_pb2.EchoRequest(count=50), metadata=auth, timeout=5))
    check("server stream", [i.seq for i in items] == list(range(50)) and items[7].text == "item 7")

    reqs = iter([echo_pb2.EchoRequest(count=i) for i in range(1, 11)])
    r = stub.Sum(reqs, metadata=auth, timeout=5)
    check("client stream", r.total == 55 and r.seq == 10, str(r))

    c, d = code_of(lambda: stub.Say(echo_pb2.EchoRequest(text="x"), timeout=5))
    check("missing token", c == grpc.StatusCode.UNAUTHENTICATED, f"{c} {d}")
    c, d = code_of(lambda: stub.Say(echo_pb2.EchoRequest(text="x"),
                                    metadata=[("authorization", "Bearer nope")], timeout=5))
    check("wrong token", c == grpc.StatusCode.UNAUTHENTICATED, f"{c} {d}")
    r = stub.Small(echo_pb2.EchoRequest(text="open"), timeout=5)
    check("no-auth method", r.text == "open")

    c, d = code_of(lambda: stub.Say(echo_pb2.EchoRequest(text="y" * 100), metadata=auth,
                                    timeout=5))
    check("validator", c == grpc.StatusCode.INVALID_ARGUMENT and "text" in d, f"{c} {d}")
    c, d = code_of(lambda: stub.Say(echo_pb2.EchoRequest(mode=echo_pb2.MODE_FAIL, fail_status=12),
                                    metadata=auth, timeout=5))
    check("status mapping", c == grpc.StatusCode.NOT_FOUND and "asked to fail" in d, f"{c} {d}")
    c, d = code_of(lambda: stub.Say(echo_pb2.EchoRequest(mode=echo_pb2.MODE_SLOW, delay_ms=3000),
                                    metadata=auth, timeout=0.2))
    check("deadline", c == grpc.StatusCode.DEADLINE_EXCEEDED, f"{c} {d}")
    c, d = code_of(lambda: stub.Small(echo_pb2.EchoRequest(payload=b"z" * 4096), timeout=5))
    check("per-method size cap", c == grpc.StatusCode.RESOURCE_EXHAUSTED, f"{c} {d}")
    c, d = code_of(lambda: stub.Say(echo_pb2.EchoRequest(payload=b"z" * 100000), metadata=auth,
                                    timeout=5))
    check("server size cap", c == grpc.StatusCode.RESOURCE_EXHAUSTED, f"{c} {d}")
    raw = ch.unary_unary("/shoal.test.Echo/Say")
    c, d = code_of(lambda: raw(b"\xff\xff\xff\xff", metadata=auth, timeout=5))
    check("garbage bytes", c == grpc.StatusCode.INVALID_ARGUMENT, f"{c} {d}")
    nope = ch.unary_unary("/shoal.test.Echo/Nope")
    c, d = code_of(lambda: nope(b"", metadata=auth, timeout=5))
    check("unknown method", c == grpc.StatusCode.UNIMPLEMENTED, f"{c} {d}")
    r = stub.Say(echo_pb2.EchoRequest(text="still serving"), metadata=auth, timeout=5)
    check("still serving", r.text == "still serving")
    ch.close()
finally:
    server.stdin.close()
    rc = server.wait(timeout=30)
check("server exits cleanly", rc == 0, f"rc={rc}")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
