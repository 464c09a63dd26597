package io.sparklora.model;

import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Frees native buffers as soon as they are dead. ND4J otherwise frees an array only when the JVM collects
 * its Java object, which on a training step lets gigabytes of spent activations pile up between
 * collections. Views and arrays already freed are skipped, so releasing twice is harmless.
 */
public final class Tensors {
    private Tensors() {}

    public static void release(INDArray... arrays) {
        for (INDArray a : arrays) {
            if (a != null && !a.isView() && a.closeable() && !a.wasClosed()) a.close();
        }
    }
}
