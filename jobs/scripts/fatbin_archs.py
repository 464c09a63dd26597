#!/usr/bin/env python3
"""Lists the GPU code a CUDA shared library carries, for machines without cuobjdump.

    unzip -o ~/.m2/repository/org/nd4j/nd4j-cuda-11.6/1.0.0-M2.1/nd4j-cuda-11.6-1.0.0-M2.1-linux-x86_64.jar \
        'org/nd4j/linalg/jcublas/bindings/linux-x86_64/libnd4jcuda.so' -d /tmp/nd4j-cuda
    python3 jobs/scripts/fatbin_archs.py /tmp/nd4j-cuda/org/nd4j/linalg/jcublas/bindings/linux-x86_64/libnd4jcuda.so

Reads the ELF section .nv_fatbin: a run of fatbin containers (magic 0xBA55ED50, then a 64-bit size), each a list
of entries whose header gives the kind (1 PTX, 2 cubin/SASS), the target sm and flags (0x2000: compressed).
Prints how many entries there are of each kind and target; docs/CLUSTER.md ("CUDA executors") quotes the result.
"""
import collections
import struct
import sys

FATBIN_MAGIC = 0xBA55ED50
KINDS = {1: 'PTX', 2: 'SASS'}


def section(data, wanted):
    shoff, = struct.unpack_from('<Q', data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from('<HHH', data, 0x3A)
    headers = [struct.unpack_from('<IIQQQQIIQQ', data, shoff + i * shentsize) for i in range(shnum)]
    names = headers[shstrndx][4]
    for h in headers:
        name = data[names + h[0]:data.index(b'\0', names + h[0])].decode()
        if name == wanted:
            return h[4], h[5]
    sys.exit('no %s section' % wanted)


def main(path):
    with open(path, 'rb') as f:
        data = f.read()
    off, size = section(data, '.nv_fatbin')
    counts, flags = collections.Counter(), collections.Counter()
    containers = covered = 0
    pos, end = off, off + size
    while pos + 16 <= end:
        magic, _version, header, body = struct.unpack_from('<IHHQ', data, pos)
        if magic != FATBIN_MAGIC:
            pos += 8  # containers are 8-byte aligned
            continue
        containers += 1
        covered += header + body
        p, stop = pos + header, pos + header + body
        while p < stop:
            kind, _, entry_header, entry_size = struct.unpack_from('<HHIQ', data, p)
            arch, = struct.unpack_from('<I', data, p + 28)
            flag, = struct.unpack_from('<Q', data, p + 40)
            counts[(arch, KINDS.get(kind, 'kind %d' % kind))] += 1
            flags[flag] += 1
            p += entry_header + entry_size
        pos = stop
    print('%s: .nv_fatbin %d bytes, %d containers covering %d bytes' % (path, size, containers, covered))
    for (arch, kind), n in sorted(counts.items()):
        print('  %-4s sm_%d: %d entries' % (kind, arch, n))
    print('  entry flags: %s' % ', '.join('0x%x x %d' % kv for kv in sorted(flags.items())))
    if not any(kind == 'PTX' for _, kind in counts):
        print('  no PTX: the library runs only on GPUs its SASS targets cover')


if __name__ == '__main__':
    main(sys.argv[1])
