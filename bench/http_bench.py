#!/usr/bin/env python3
"""Drivers for bench/fuzz-http.sh and bench/http-load.sh (standard library only; loopback only).

  http_bench.py seeds OUT_DIR TENCH.jpg      make the seed images (needs ffmpeg and jpegtran)
  http_bench.py fuzz  URL SEED_DIR N SEED    N mutated bodies -> POST /v1/classify; summary as JSON on stdout
  http_bench.py load  URL IMAGE CLIENTS SECONDS QUEUE_LENGTH

Every request is counted by its answer; a connection error or 5xx is a failure.
"""
import http.client
import json
import os
import random
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import zlib

# ---------------------------------------------------------------- seeds

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def rgb_of(path):
    """Raw RGB24 pixels of an image, through ffmpeg (no PIL here)."""
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
                            "-of", "csv=p=0", path], check=True, capture_output=True, text=True).stdout.strip()
    w, h = (int(x) for x in probe.split(",")[:2])
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         check=True, capture_output=True).stdout
    return w, h, raw


def bits_writer():
    out = bytearray()
    state = {"acc": 0, "n": 0}

    def put(code, length):
        for i in range(length - 1, -1, -1):
            state["acc"] = (state["acc"] << 1) | ((code >> i) & 1)
            state["n"] += 1
            if state["n"] == 8:
                out.append(state["acc"])
                if state["acc"] == 0xFF:
                    out.append(0)  # byte stuffing
                state["acc"], state["n"] = 0, 0

    def flush():
        while state["n"]:
            put(1, 1)
        return bytes(out)

    return put, flush


DC_CODES = [(0b00, 2), (0b010, 3), (0b011, 3), (0b100, 3), (0b101, 3), (0b110, 3), (0b1110, 4), (0b11110, 5),
            (0b111110, 6), (0b1111110, 7), (0b11111110, 8), (0b111111110, 9)]


def cmyk_jpeg(w, h, rgb):
    """A baseline Adobe CMYK JPEG with DC-only blocks (blocky but valid): what print workflows send."""
    cmyk = []
    for comp in range(4):
        plane = bytearray(w * h)
        for i in range(w * h):
            r, g, b = rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]
            k = 255 - max(r, g, b)
            plane[i] = 255 - (k if comp == 3 else (255 - (r, g, b)[comp] - k))  # Adobe stores CMYK inverted
        cmyk.append(plane)
    out = bytearray(b"\xFF\xD8")
    out += b"\xFF\xEE" + struct.pack(">H", 14) + b"Adobe" + struct.pack(">HHHB", 100, 0, 0, 0)
    out += b"\xFF\xDB" + struct.pack(">H", 67) + b"\x00" + bytes([8] * 64)
    out += b"\xFF\xC0" + struct.pack(">HBHHB", 8 + 3 * 4, 8, h, w, 4) + b"".join(bytes([c + 1, 0x11, 0]) for c in range(4))
    dc_bits = bytes([0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    out += b"\xFF\xC4" + struct.pack(">H", 2 + 17 + 12) + b"\x00" + dc_bits + bytes(range(12))
    out += b"\xFF\xC4" + struct.pack(">H", 2 + 17 + 1) + b"\x10" + bytes([1] + [0] * 15) + b"\x00"  # AC: only EOB, code '0'
    out += b"\xFF\xDA" + struct.pack(">HB", 6 + 2 * 4, 4) + b"".join(bytes([c + 1, 0]) for c in range(4)) + b"\x00\x3F\x00"
    put, flush = bits_writer()
    pred = [0, 0, 0, 0]
    for by in range(0, h, 8):
        for bx in range(0, w, 8):
            for c in range(4):
                total = 0
                for y in range(by, by + 8):
                    row = min(y, h - 1) * w
                    for x in range(bx, bx + 8):
                        total += cmyk[c][row + min(x, w - 1)]
                dc = round(total / 64 - 128)
                diff, pred[c] = dc - pred[c], dc
                size = 0 if diff == 0 else abs(diff).bit_length()
                put(*DC_CODES[size])
                if size:
                    put(diff if diff > 0 else diff + (1 << size) - 1, size)
                put(0, 1)  # EOB
    out += flush() + b"\xFF\xD9"
    return bytes(out)


def with_exif_orientation(jpeg, orientation):
    """The JPEG with an APP1 Exif segment holding only the Orientation tag (little-endian TIFF)."""
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0)
    app1 = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xFF\xE1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


def seeds(out, tench):
    os.makedirs(out, exist_ok=True)
    base = open(tench, "rb").read()
    open(f"{out}/baseline.jpg", "wb").write(base)
    subprocess.run(["jpegtran", "-progressive", "-copy", "none", "-outfile", f"{out}/progressive.jpg", tench], check=True)
    open(f"{out}/exif-rotated.jpg", "wb").write(with_exif_orientation(base, 6))
    w, h, rgb = rgb_of(tench)
    open(f"{out}/cmyk.jpg", "wb").write(cmyk_jpeg(w, h, rgb))
    for name, fmt in (("rgb48.png", "rgb48be"), ("palette.png", "pal8"), ("grey16.png", "gray16be"), ("rgba.png", "rgba")):
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", tench, "-pix_fmt", fmt, f"{out}/{name}"], check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", tench, "-q:v", "3", f"{out}/ffmpeg.jpg"], check=True)
    print(" ".join(sorted(os.listdir(out))))

# ---------------------------------------------------------------- mutations

def patch_dimensions(body, w, h):
    """PNG: rewrite IHDR (and its CRC); JPEG: rewrite the SOF height/width. Unchanged when neither is found."""
    b = bytearray(body)
    if b[:8] == b"\x89PNG\r\n\x1a\n" and b[12:16] == b"IHDR":
        b[16:24] = struct.pack(">II", w & 0xFFFFFFFF, h & 0xFFFFFFFF)
        b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])) & 0xFFFFFFFF)
        return bytes(b)
    i = 2
    while i + 9 < len(b):
        if b[i] != 0xFF:
            i += 1
            continue
        marker, length = b[i + 1], struct.unpack(">H", b[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xC2:
            b[i + 5:i + 9] = struct.pack(">HH", h & 0xFFFF, w & 0xFFFF)
            return bytes(b)
        i += 2 + length
    return bytes(b)


def mutate(rng, body):
    kind = rng.choice(["valid", "bitflip", "bitflip", "truncate", "truncate", "huge", "zero", "random", "splice", "header"])
    if kind == "valid":
        return kind, body
    if kind == "bitflip":
        b = bytearray(body)
        for _ in range(rng.randint(1, 64)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return kind, bytes(b)
    if kind == "truncate":
        return kind, body[:rng.randrange(1, len(body))]
    if kind == "huge":
        side = rng.choice([20000, 40000, 65535, 100000, 1 << 20, 0x7FFFFFFF])
        return kind, patch_dimensions(body, side, rng.choice([side, 1, 30000]))
    if kind == "zero":
        return kind, patch_dimensions(body, rng.choice([0, 1, 500]), 0) if rng.random() < 0.5 else patch_dimensions(body, 0, 375)
    if kind == "random":
        return kind, rng.randbytes(rng.randint(1, 4096))
    if kind == "splice":
        i, j = sorted(rng.randrange(len(body)) for _ in range(2))
        return kind, body[:i] + body[j:] + body[i:j]
    return kind, body[:rng.randint(2, 600)]  # header only

# ---------------------------------------------------------------- HTTP

class Client:
    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        assert u.hostname in ("127.0.0.1", "localhost", "::1"), "loopback only"
        self.host, self.port, self.conn = u.hostname, u.port, None

    def request(self, method, path, body=None):
        for attempt in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
                self.conn.request(method, path, body=body, headers={"Content-Type": "application/octet-stream"} if body is not None else {})
                r = self.conn.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return r.status, data, r.getheader("Retry-After")
            except (ConnectionError, http.client.HTTPException, OSError):
                if self.conn:
                    self.conn.close()
                self.conn = None
                if attempt:
                    raise

    def status(self):
        return json.loads(self.request("GET", "/v1/status")[1])


def fuzz(url, seed_dir, n, seed):
    rng = random.Random(seed)
    bodies = {name: open(os.path.join(seed_dir, name), "rb").read() for name in sorted(os.listdir(seed_dir))}
    c = Client(url)
    for name, body in bodies.items():  # warm-up: every seed once, unmutated
        c.request("POST", "/v1/classify", body)
    rest = c.status()["process"]["rss_bytes"]
    answers, by_kind, failures, worst_ms = {}, {}, [], 0.0
    t0 = time.time()
    for i in range(n):
        name = rng.choice(list(bodies))
        kind, body = mutate(rng, bodies[name])
        start = time.perf_counter()
        try:
            status, data, _ = c.request("POST", "/v1/classify", body)
        except Exception as e:  # the connection broke: the service may have crashed
            failures.append(f"{i} {name}/{kind}: {type(e).__name__} {e}")
            status = 0
        worst_ms = max(worst_ms, (time.perf_counter() - start) * 1000)
        answers[status] = answers.get(status, 0) + 1
        by_kind.setdefault(kind, {}).setdefault(status, 0)
        by_kind[kind][status] += 1
        if status >= 500 or status == 0 or (status != 200 and status < 400):
            failures.append(f"{i} {name}/{kind}: {status} {data[:200] if status else ''}")
        if i % 500 == 499:
            print(f"fuzz: {i + 1}/{n}", file=sys.stderr)
    wall = time.time() - t0
    after = c.status()
    status, data, _ = c.request("POST", "/v1/classify", bodies["baseline.jpg"])
    top = json.loads(data)["top"][0] if status == 200 else {}
    return {"requests": n, "answers": {str(k): v for k, v in sorted(answers.items())}, "by_kind": {k: {str(s): v for s, v in sorted(d.items())} for k, d in sorted(by_kind.items())},
            "failures": failures[:20], "failure_count": len(failures), "wall_s": round(wall, 1), "worst_ms": round(worst_ms, 1),
            "rss_rest_mib": round(rest / 2**20, 1), "rss_after_mib": round(after["process"]["rss_bytes"] / 2**20, 1),
            "rss_ratio": round(after["process"]["rss_bytes"] / rest, 3),
            "tench_after": {"status": status, "synset": top.get("synset"), "score": top.get("score")}}


def load(url, image, clients, seconds, queue_length):
    body = open(image, "rb").read()
    c = Client(url)
    c.request("POST", "/v1/classify", body)  # warm
    before = c.status()
    lock = threading.Lock()
    accepted, counts, rss = [], {}, []
    deadline = time.time() + seconds

    def client():
        me = Client(url)
        while time.time() < deadline:
            start = time.perf_counter()
            try:
                status, _, retry = me.request("POST", "/v1/classify", body)
            except Exception:
                status, retry = 0, None
            ms = (time.perf_counter() - start) * 1000
            with lock:
                counts[status] = counts.get(status, 0) + 1
                if status == 200:
                    accepted.append(ms)
            if status == 503:  # a well-behaved client honours Retry-After
                time.sleep(min(float(retry or 1), max(0.0, deadline - time.time())))

    def sampler():
        s = Client(url)
        while time.time() < deadline:
            rss.append((time.time() - (deadline - seconds), s.status()["process"]["rss_bytes"]))
            time.sleep(5)

    threads = [threading.Thread(target=client) for _ in range(clients)] + [threading.Thread(target=sampler)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = c.status()
    accepted.sort()
    pct = lambda p: accepted[min(len(accepted) - 1, max(0, int(round(p * len(accepted))) - 1))] if accepted else float("nan")
    sent = sum(counts.values())
    classified = after["counters"]["classified"] - before["counters"]["classified"]
    rejected = after["counters"]["rejected"] - before["counters"]["rejected"]
    warm = [r for t, r in rss if t >= 10] or [r for _, r in rss]
    p50, p99 = pct(0.5), pct(0.99)
    return {"clients": clients, "seconds": seconds, "queue_length": queue_length, "sent": sent,
            "answers": {str(k): v for k, v in sorted(counts.items())}, "server_classified": classified, "server_rejected": rejected,
            "sent_equals_classified_plus_rejected": sent == classified + rejected,
            "p50_ms": round(p50, 1), "p90_ms": round(pct(0.9), 1), "p99_ms": round(p99, 1), "max_ms": round(accepted[-1], 1) if accepted else None,
            "p99_bound_ms": round(queue_length * p50 * 1.5, 1), "p99_within_bound": p99 <= queue_length * p50 * 1.5,
            "rss_mib": [round(r / 2**20, 1) for _, r in rss], "rss_growth_after_10s": round(max(warm) / warm[0] - 1, 3) if warm else None,
            "throughput_per_s": round(classified / seconds, 2)}


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "seeds":
        seeds(sys.argv[2], sys.argv[3])
    elif cmd == "fuzz":
        print(json.dumps(fuzz(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))))
    elif cmd == "load":
        print(json.dumps(load(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))))
    else:
        sys.exit(__doc__)
