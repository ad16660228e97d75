#!/usr/bin/env python3
"""The byte-level half of the daemonless image build (`make images`, tools/images.sh).

  images.py layer BINARY NAME OUT.tar     the one layer of an image: BINARY at /usr/local/bin/NAME,
                                          the shared libraries `ldd` resolves (the loader at its
                                          absolute path), CA certificates, passwd/group with the
                                          nonroot user 65532, /tmp; deterministic (sorted entries,
                                          fixed mtime, numeric owners, no user or group names)
  images.py archive LAYOUT REF OUT.tar    an OCI image layout (from `crane pull --format oci`) as
                                          one tar that is both an OCI archive (oci-layout,
                                          index.json naming REF) and a docker-style archive
                                          (manifest.json with RepoTags), so `crane push`,
                                          `docker load`, `podman load`, `skopeo` and `ctr import`
                                          all read it
  images.py expose DOCKERFILE STAGE       the ports the Dockerfile's stage exposes, one per line
  images.py check ARCHIVE NAME VERSION DOCKERFILE STAGE
                                          unpack the archive as an engine would (digests checked,
                                          layers applied in order) into a temp root, assert the
                                          config against the Dockerfile's stage, then run the
                                          entrypoint with --version chrooted into the root as
                                          65532:65532, once more with the root read-only
"""

import gzip
import hashlib
import io
import json
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile

UID = GID = 65532
# A fixed mtime for every entry: the same binaries give the same layer digest.
MTIME = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

PASSWD = (
    "root:x:0:0:root:/root:/sbin/nologin\n"
    "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
)
GROUP = "root:x:0:\nnonroot:x:65532:\n"
# glibc's name service for the hosts database: /etc/hosts first, then DNS (files and dns are built
# into glibc ≥ 2.34, nothing to dlopen).
NSSWITCH = "hosts: files dns\n"


def die(msg):
    print(f"images.py: {msg}", file=sys.stderr)
    sys.exit(1)


def shared_libraries(binary):
    """Absolute paths of what the dynamic loader maps for `binary` (vdso excluded), loader included."""
    out = subprocess.run(["ldd", binary], check=True, capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        line = line.strip()
        if "not found" in line:
            die(f"{binary}: {line}")
        m = re.match(r"^\S+ => (/\S+) \(0x[0-9a-f]+\)$", line) or re.match(r"^(/\S+) \(0x[0-9a-f]+\)$", line)
        if m:
            libs.append(m.group(1))
        elif line.startswith("statically linked") or re.match(r"^linux-(vdso|gate)\.so", line):
            continue
        else:
            die(f"unexpected ldd line for {binary}: {line!r}")
    return libs


def layer(binary, name, out):
    if not os.path.isfile(CA_BUNDLE):
        die(f"{CA_BUNDLE} is missing: install Debian's ca-certificates (apt-get install ca-certificates)")
    dirs = {"tmp": 0o1777, "home/nonroot": 0o700}
    files = {}  # path in the image -> (mode, bytes)

    def add_file(path, mode, data):
        path = path.lstrip("/")
        files[path] = (mode, data)

    def read(path):
        with open(path, "rb") as f:  # follows symlinks: the image holds the file itself
            return f.read()

    add_file(f"/usr/local/bin/{name}", 0o755, read(binary))
    for lib in shared_libraries(binary):
        add_file(lib, stat.S_IMODE(os.stat(lib).st_mode) & 0o755, read(lib))
    add_file(CA_BUNDLE, 0o644, read(CA_BUNDLE))
    add_file("/etc/passwd", 0o644, PASSWD.encode())
    add_file("/etc/group", 0o644, GROUP.encode())
    add_file("/etc/nsswitch.conf", 0o644, NSSWITCH.encode())

    # Every parent directory gets its own entry, 0755 root unless listed above.
    for path in list(files) + list(dirs):
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.setdefault("/".join(parts[:i]), 0o755)

    entries = [(p, "dir") for p in dirs] + [(p, "file") for p in files]
    with open(out, "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, kind in sorted(entries):
            info = tarfile.TarInfo(path)
            info.mtime = MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if path == "home/nonroot":
                info.uid, info.gid = UID, GID
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = dirs[path]
                tar.addfile(info)
            else:
                mode, data = files[path]
                info.mode = mode
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob_path(digest):
    algo, hexpart = digest.split(":", 1)
    return f"blobs/{algo}/{hexpart}"


def archive(layout, ref, out):
    with open(os.path.join(layout, "index.json"), "rb") as f:
        index = json.load(f)
    if len(index.get("manifests", [])) != 1:
        die(f"{layout}: expected one manifest in index.json")
    desc = dict(index["manifests"][0])
    with open(os.path.join(layout, blob_path(desc["digest"])), "rb") as f:
        manifest = json.load(f)
    repo, tag = ref.rsplit(":", 1)
    # The names the OCI image spec and containerd/docker read from an OCI archive.
    desc.pop("artifactType", None)  # crane pull sets it to the config type; engines expect none on an image
    desc["annotations"] = {"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": tag}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [desc]}
    docker = [
        {
            "Config": blob_path(manifest["config"]["digest"]),
            "RepoTags": [ref],
            "Layers": [blob_path(layer["digest"]) for layer in manifest["layers"]],
        }
    ]
    generated = {
        "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
        "index.json": json.dumps(index, indent=2).encode() + b"\n",
        "manifest.json": json.dumps(docker, indent=2).encode() + b"\n",
    }
    blobs = sorted(
        os.path.join(root, n)[len(layout) + 1 :]
        for root, _, names in os.walk(os.path.join(layout, "blobs"))
        for n in names
    )
    tmp = out + ".partial"
    with open(tmp, "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def put(path, data, mode=0o644, kind=tarfile.REGTYPE):
            info = tarfile.TarInfo(path)
            info.mtime, info.uid, info.gid, info.uname, info.gname = MTIME, 0, 0, "", ""
            info.type, info.mode, info.size = kind, mode, len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)

        for d in ["blobs", "blobs/sha256"]:
            put(d, b"", 0o755, tarfile.DIRTYPE)
        for path in blobs:
            with open(os.path.join(layout, path), "rb") as b:
                data = b.read()
            if blob_path(sha256(data)) != path:
                die(f"{layout}/{path}: content does not match its digest")
            put(path, data)
        for path in sorted(generated):
            put(path, generated[path])
    os.replace(tmp, out)


def dockerfile_stage(dockerfile, stage):
    """USER, ENTRYPOINT and EXPOSE of one final stage of the Dockerfile."""
    found, user, entrypoint, ports = False, None, None, []
    with open(dockerfile) as f:
        for line in f:
            words = line.split()
            if not words or words[0].startswith("#"):
                continue
            if words[0] == "FROM":
                if found:
                    break
                found = len(words) >= 4 and words[-2] == "AS" and words[-1] == stage
            elif found and words[0] == "USER":
                user = words[1]
            elif found and words[0] == "ENTRYPOINT":
                entrypoint = json.loads(line.split(None, 1)[1])
            elif found and words[0] == "EXPOSE":
                ports += [p if "/" in p else p + "/tcp" for p in words[1:]]
    if not found:
        die(f"{dockerfile}: no stage {stage}")
    return user, entrypoint, ports


class Unpacked:
    """An archive read as an engine reads it: index.json -> manifest -> config and layers, every
    blob checked against its digest, cross-checked with the docker-style manifest.json."""

    def __init__(self, path):
        self.tar = tarfile.open(path)

    def read(self, name):
        member = self.tar.extractfile(name)
        if member is None:
            die(f"{name} missing from the archive")
        return member.read()

    def blob(self, desc):
        data = self.read(blob_path(desc["digest"]))
        if sha256(data) != desc["digest"] or len(data) != desc["size"]:
            die(f"blob {desc['digest']} does not match its descriptor")
        return data

    def load(self, ref):
        def expect(ok, what, got):
            if not ok:
                die(f"{self.tar.name}: {what}: {got!r}")

        layout = json.loads(self.read("oci-layout"))
        expect(layout.get("imageLayoutVersion") == "1.0.0", "oci-layout", layout)
        index = json.loads(self.read("index.json"))
        expect(len(index.get("manifests", [])) == 1, "index.json must name one manifest", index)
        desc = index["manifests"][0]
        expect(desc["mediaType"] == "application/vnd.oci.image.manifest.v1+json", "not an OCI image", desc)
        name = desc.get("annotations", {}).get("io.containerd.image.name")
        expect(name == ref, f"index.json names the image, not {ref}", name)
        manifest = json.loads(self.blob(desc))
        config = json.loads(self.blob(manifest["config"]))
        docker = json.loads(self.read("manifest.json"))
        expect(
            docker
            == [
                {
                    "Config": blob_path(manifest["config"]["digest"]),
                    "RepoTags": [ref],
                    "Layers": [blob_path(layer["digest"]) for layer in manifest["layers"]],
                }
            ],
            "manifest.json does not match index.json",
            docker,
        )
        return manifest, config

    def apply_layer(self, desc, root):
        data = self.blob(desc)
        if desc["mediaType"].endswith("+gzip"):
            data = gzip.decompress(data)
        diff_id = sha256(data)
        with tarfile.open(fileobj=io.BytesIO(data)) as layer:
            for m in layer.getmembers():
                parent, base = os.path.split(m.name)
                # OCI whiteouts: an opaque directory, or one deleted path of the layers below.
                if base == ".wh..wh..opq":
                    target = os.path.join(root, parent)
                    for n in os.listdir(target) if os.path.isdir(target) else []:
                        p = os.path.join(target, n)
                        shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.remove(p)
                    continue
                if base.startswith(".wh."):
                    p = os.path.join(root, parent, base[4:])
                    if os.path.isdir(p) and not os.path.islink(p):
                        shutil.rmtree(p)
                    elif os.path.lexists(p):
                        os.remove(p)
                    continue
                layer.extract(m, root, set_attrs=True, numeric_owner=True, **TRUSTED)
        return diff_id


# The layers are ours; Python ≥ 3.12 warns unless the extraction filter is named.
TRUSTED = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw)


def check(path, name, version, dockerfile, stage):
    ref = f"ghcr.io/portcullis/{name}:{version}"
    img = Unpacked(path)
    manifest, config = img.load(ref)
    user, entrypoint, ports = dockerfile_stage(dockerfile, stage)
    c = config["config"]
    expect = {
        "User": (c.get("User"), user),
        "Entrypoint": (c.get("Entrypoint"), entrypoint),
        "WorkingDir": (c.get("WorkingDir"), "/"),
        "ExposedPorts": (sorted(c.get("ExposedPorts") or {}), sorted(ports)),
        "version label": (c.get("Labels", {}).get("org.opencontainers.image.version"), version),
        "os/architecture": ((config.get("os"), config.get("architecture")), ("linux", ARCH)),
    }
    for what, (got, want) in expect.items():
        if got != want:
            die(f"{path}: config {what} is {got!r}, the Dockerfile's {stage} stage says {want!r}")
    if user != "65532:65532":
        die(f"{dockerfile}: stage {stage} runs as {user}, not 65532:65532")

    root = tempfile.mkdtemp(prefix=f"{name}-root.", dir=os.environ.get("TMPDIR"))
    os.chmod(root, 0o755)  # an engine's root directory; mkdtemp makes it 0700
    try:
        diff_ids = [img.apply_layer(l, root) for l in manifest["layers"]]
        if diff_ids != config["rootfs"]["diff_ids"]:
            die(f"{path}: layer diff_ids {diff_ids} differ from the config's {config['rootfs']['diff_ids']}")
        with open(os.path.join(root, "etc/passwd")) as f:
            if "nonroot:x:65532:65532:" not in f.read():
                die(f"{path}: /etc/passwd has no nonroot user 65532")
        tmp = os.stat(os.path.join(root, "tmp"))
        if stat.S_IMODE(tmp.st_mode) != 0o1777:
            die(f"{path}: /tmp is {oct(stat.S_IMODE(tmp.st_mode))}, not 1777")
        # The image's user and working directory, nothing of this machine's filesystem.
        cmd = entrypoint + ["--version"]
        want = f"{name} {version}"
        # No `env` in the image: the entrypoint runs directly, with an empty environment.
        chroot = ["env", "-i", CHROOT, f"--userspec={user}", root, *cmd]
        r = run(chroot)
        if r.returncode != 0 or r.stdout.strip() != want:
            die(f"{path}: `{' '.join(chroot)}` exited {r.returncode}, printed {r.stdout!r} {r.stderr!r}; want {want!r}")
        # Read-only root, as the chart runs it (readOnlyRootFilesystem): a private mount namespace,
        # the root bind-mounted onto itself read-only; a write to it must fail there.
        ro = (
            'set -e; mount --bind "$1" "$1"; mount -o remount,bind,ro "$1"; '
            'if touch "$1/tmp/probe" 2>/dev/null; then echo "root is writable" >&2; exit 97; fi; '
            'root="$1" user="$2" chroot="$3"; shift 3; exec env -i "$chroot" --userspec="$user" "$root" "$@"'
        )
        r = run(["unshare", "--mount", "--propagation", "private", "sh", "-c", ro, "sh", root, user, CHROOT, *cmd])
        if r.returncode != 0 or r.stdout.strip() != want:
            die(f"{path}: read-only root: exited {r.returncode}, printed {r.stdout!r} {r.stderr!r}; want {want!r}")
        # The same binary must not run without the layer's libraries: the root is what makes it run.
        libc = [os.path.join(d, "libc.so.6") for d, _, names in os.walk(root) if "libc.so.6" in names]
        if not libc:
            die(f"{path}: no libc.so.6 in the image")
        os.remove(libc[0])
        r = run(chroot)
        if r.returncode == 0:
            die(f"{path}: the entrypoint ran without libc in the root: the check does not isolate it")
    finally:
        shutil.rmtree(root)
    size = os.path.getsize(path)
    print(f"{path}: {want}, user {user}, entrypoint {entrypoint}, ports {sorted(ports) or 'none'}, "
          f"read-only root ok, {size / 1e6:.1f} MB")


def main(argv):
    if len(argv) == 4 and argv[0] == "layer":
        layer(*argv[1:])
    elif len(argv) == 4 and argv[0] == "archive":
        archive(*argv[1:])
    elif len(argv) == 3 and argv[0] == "expose":
        print("\n".join(dockerfile_stage(*argv[1:])[2]))
    elif len(argv) == 6 and argv[0] == "check":
        check(*argv[1:])
    else:
        die(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
