package io.sparklora.data;

import org.apache.arrow.memory.AllocationManager;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.ReferenceManager;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.memory.util.MemoryUtil;

/**
 * Arrow allocators for token shards. Arrow's default allocation manager comes from arrow-memory-netty,
 * which only works with the exact netty version it was built against, and a Spark application's class
 * path decides which netty it gets; this one takes native memory straight from {@code Unsafe} (as
 * arrow-memory-unsafe does) and zeroes it, so shard bytes never depend on what the memory held before.
 */
public final class ArrowMemory {
    private ArrowMemory() {}

    /** A new root allocator (close it when done; closing reports leaks). */
    public static BufferAllocator newAllocator() {
        return new RootAllocator(RootAllocator.configBuilder().allocationManagerFactory(FACTORY).build());
    }

    /**
     * A new root allocator that refuses (with Arrow's {@code OutOfMemoryException}) to hold more than {@code limit}
     * bytes at once: for reading a file whose declared buffer lengths must not be trusted.
     */
    public static BufferAllocator newAllocator(long limit) {
        return new RootAllocator(RootAllocator.configBuilder().allocationManagerFactory(FACTORY).maxAllocation(limit).build());
    }

    private static final ArrowBuf EMPTY = new ArrowBuf(ReferenceManager.NO_OP, null, 0, MemoryUtil.UNSAFE.allocateMemory(0));

    private static final AllocationManager.Factory FACTORY = new AllocationManager.Factory() {
        @Override
        public AllocationManager create(BufferAllocator accountingAllocator, long size) {
            return new ZeroedUnsafeAllocation(accountingAllocator, size);
        }

        @Override
        public ArrowBuf empty() {
            return EMPTY;
        }
    };

    private static final class ZeroedUnsafeAllocation extends AllocationManager {
        private final long address;
        private final long size;

        ZeroedUnsafeAllocation(BufferAllocator accountingAllocator, long size) {
            super(accountingAllocator);
            this.address = MemoryUtil.UNSAFE.allocateMemory(size);
            this.size = size;
            MemoryUtil.UNSAFE.setMemory(address, size, (byte) 0);
        }

        @Override public long getSize() { return size; }

        @Override protected long memoryAddress() { return address; }

        @Override protected void release0() { MemoryUtil.UNSAFE.freeMemory(address); }
    }
}
