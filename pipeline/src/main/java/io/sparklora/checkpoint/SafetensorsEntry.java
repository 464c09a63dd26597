package io.sparklora.checkpoint;

/**
 * One tensor's line in a safetensors header: its dtype, shape, and byte range [begin, end)
 * relative to the start of the data buffer (which follows the header).
 */
record SafetensorsEntry(String name, SafetensorsDType dtype, long[] shape, long begin, long end) {

    long byteLength() {
        return end - begin;
    }

    /** Element count; the header validation has already checked it cannot overflow. */
    long elementCount() {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return n;
    }
}
