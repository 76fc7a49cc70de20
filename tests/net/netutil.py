"""netutil.py - what the tests' loopback servers share."""
import os


def write_port_file(path, port):
    """Publishes @port in @path atomically, once the server listens: the
    tests wait for the file to appear."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.rename(tmp, path)


def serve(server):
    """Serves until interrupted; returns the exit status."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0
