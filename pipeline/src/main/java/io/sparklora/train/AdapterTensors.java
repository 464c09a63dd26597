package io.sparklora.train;

import io.sparklora.model.Parameter;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.io.Serializable;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The only tensors that travel between driver and executors: an adapter's trainable tensors (or their
 * gradients, or optimizer moments) as plain float arrays by parameter name. Plain arrays serialize
 * compactly with Kryo and Java serialization alike and need no native memory on the wire.
 *
 * <p>{@link #bytes()} is the payload the report records as "bytes broadcast/reduced per round".
 */
public final class AdapterTensors implements Serializable {
    private static final long serialVersionUID = 1L;
    private final LinkedHashMap<String, float[]> data = new LinkedHashMap<>();
    private final LinkedHashMap<String, long[]> shapes = new LinkedHashMap<>();

    public static AdapterTensors ofValues(List<Parameter> params) {
        AdapterTensors t = new AdapterTensors();
        for (Parameter p : params) t.put(p.name(), p.value());
        return t;
    }

    /** The gradients of {@code params}, by parameter name (a zero tensor where a gradient was never made). */
    public static AdapterTensors ofGradients(List<Parameter> params) {
        AdapterTensors t = new AdapterTensors();
        for (Parameter p : params) t.put(p.name(), p.grad());
        return t;
    }

    public static AdapterTensors of(Map<String, INDArray> tensors) {
        AdapterTensors t = new AdapterTensors();
        tensors.forEach(t::put);
        return t;
    }

    public void put(String name, INDArray value) {
        data.put(name, value.dup('c').castTo(DataType.FLOAT).data().asFloat());
        shapes.put(name, value.shape());
    }

    public boolean isEmpty() { return data.isEmpty(); }
    public Map<String, float[]> data() { return data; }

    public INDArray get(String name) {
        float[] v = data.get(name);
        if (v == null) throw new IllegalArgumentException("no tensor named " + name + " (have " + data.keySet() + ")");
        return Nd4j.create(v, shapes.get(name), 'c');
    }

    public Map<String, INDArray> toArrays() {
        Map<String, INDArray> m = new LinkedHashMap<>();
        for (String n : data.keySet()) m.put(n, get(n));
        return m;
    }

    /** Copies the values into the parameters of the same names (all must be present, shapes equal). */
    public void copyInto(List<Parameter> params) {
        for (Parameter p : params) {
            INDArray v = get(p.name());
            if (!java.util.Arrays.equals(v.shape(), p.value().shape())) {
                throw new IllegalArgumentException(p.name() + ": shape " + java.util.Arrays.toString(v.shape())
                        + " does not match the parameter's " + java.util.Arrays.toString(p.value().shape()));
            }
            p.set(v.castTo(p.value().dataType()));
        }
    }

    /**
     * Copies the values by position into {@code params}: the state tensors of the same adapter attached under another
     * name (the same method and config attach the same tensors in the same order, their names holding the adapter's
     * name). Counts and shapes must agree.
     */
    public void copyIntoInOrder(List<Parameter> params) {
        if (params.size() != data.size()) {
            throw new IllegalArgumentException(data.size() + " tensors for " + params.size() + " parameters (" + data.keySet() + ")");
        }
        int i = 0;
        for (String n : data.keySet()) {
            Parameter p = params.get(i++);
            INDArray v = get(n);
            if (!java.util.Arrays.equals(v.shape(), p.value().shape())) {
                throw new IllegalArgumentException(p.name() + " (from " + n + "): shape " + java.util.Arrays.toString(v.shape())
                        + " does not match the parameter's " + java.util.Arrays.toString(p.value().shape()));
            }
            p.set(v.castTo(p.value().dataType()));
        }
    }

    /** {@code this += w · other}, adopting other's names on first use (the reduction's accumulator). */
    public AdapterTensors addScaled(AdapterTensors other, double w) {
        for (Map.Entry<String, float[]> e : other.data.entrySet()) {
            float[] src = e.getValue();
            float[] dst = data.get(e.getKey());
            if (dst == null) {
                dst = new float[src.length];
                data.put(e.getKey(), dst);
                shapes.put(e.getKey(), other.shapes.get(e.getKey()));
            } else if (dst.length != src.length) {
                throw new IllegalStateException("tensor " + e.getKey() + " has " + src.length + " values here, " + dst.length + " there");
            }
            for (int i = 0; i < src.length; i++) dst[i] += (float) (w * src[i]);
        }
        return this;
    }

    public AdapterTensors scale(double s) {
        for (float[] v : data.values()) for (int i = 0; i < v.length; i++) v[i] *= (float) s;
        return this;
    }

    /** Σ of every value squared (in double), the square of the L2 norm over all tensors together. */
    public double squaredNorm() {
        double s = 0;
        for (float[] v : data.values()) for (float x : v) s += (double) x * x;
        return s;
    }

    /** Number of float values. */
    public long count() {
        long n = 0;
        for (float[] v : data.values()) n += v.length;
        return n;
    }

    /** Payload size in bytes (4 per value); names and shapes are negligible and not counted. */
    public long bytes() { return 4 * count(); }

    /** The first tensor holding a NaN or an infinity, or null when every value is finite. */
    public String firstNonFinite() {
        for (Map.Entry<String, float[]> e : data.entrySet()) {
            for (float f : e.getValue()) if (!Float.isFinite(f)) return e.getKey();
        }
        return null;
    }

    /** A short hash of the names and values (in name order): two equal digests mean the same tensors, bit for bit. */
    public String digest() {
        var md = io.sparklora.checkpoint.BaseModelRef.sha256();
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(4);
        for (String k : new java.util.TreeSet<>(data.keySet())) {
            md.update(k.getBytes(java.nio.charset.StandardCharsets.UTF_8));
            for (float f : data.get(k)) {
                b.clear();
                b.putFloat(f);
                md.update(b.array());
            }
        }
        return java.util.HexFormat.of().formatHex(md.digest()).substring(0, 16);
    }
}
