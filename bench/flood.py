#!/usr/bin/env python3
"""A hostile client for bench-flood.sh: logs in, opens the WebSocket, and
sends INPUT records as fast as the socket takes them for a given time
(reading and discarding whatever the server sends), so the gateway's rate
limits and everyone else's service can be measured under a flood.
Loopback only. Usage: flood.py PORT SECONDS [NAME]"""
import json, os, socket, struct, sys, time, base64, urllib.request

port, secs = int(sys.argv[1]), float(sys.argv[2])
name = sys.argv[3] if len(sys.argv) > 3 else "flooder%d" % os.getpid()
req = urllib.request.Request("http://127.0.0.1:%d/api/login" % port,
                             data=json.dumps({"username": name, "password": "flooder1"}).encode(),
                             headers={"Content-Type": "application/json"})
token = json.loads(urllib.request.urlopen(req, timeout=10).read())["token"]

def frame(payload):
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x82, 0x80 | n]) if n < 126 else bytes([0x82, 0xFE]) + struct.pack(">H", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

def connect():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET /ws?token=%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Protocol: tessera.v1\r\n\r\n" % (token, key)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            return None
        head += chunk
    if b" 101 " not in head.split(b"\r\n")[0]:
        return None
    s.setblocking(False)
    return s

# 50 INPUT records per message, each with a new seq: the server's token
# bucket (60/s, burst 120) must drop nearly all of them; when it closes us
# (1008), come straight back with the same token, as an attacker would
seq, sent, closes, end = 1, 0, 0, time.time() + secs
s = connect()
while time.time() < end:
    if s is None:
        time.sleep(0.05)
        s = connect()
        continue
    recs = b""
    for _ in range(50):
        recs += bytes([0x01, 12]) + struct.pack("<Iff", seq, 1.0, 0.0)
        seq += 1
    dead = False
    try:
        s.send(frame(recs))
        sent += 50
    except (BlockingIOError, InterruptedError):
        time.sleep(0.001)
    except OSError:
        dead = True
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                dead = True
                break
    except (BlockingIOError, InterruptedError):
        pass
    except OSError:
        dead = True
    if dead:
        closes += 1
        s.close()
        s = None
print("flood: %d records sent in %.0f s, closed by the server %d times" % (sent, secs, closes))
