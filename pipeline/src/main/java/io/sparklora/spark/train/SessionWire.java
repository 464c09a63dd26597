package io.sparklora.spark.train;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InvalidClassException;
import java.io.ObjectInputFilter;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.io.Serializable;

/**
 * The frames of a round session ({@link RoundSession}) on its TCP connections between the driver and each task.
 *
 * <pre>
 *   task → driver, once:  long MAGIC, 16-byte token, int partition, int stage attempt
 *   driver → task:         byte ROUND, int n, n bytes (a {@link SessionRound})   |   byte STOP
 *   task → driver:         byte RESULT, int n, n bytes (a RoundResult)           |   byte ERROR, UTF message
 * </pre>
 *
 * Payloads are Java-serialised, and read back through an allow-list filter ({@link #FILTER}): only the round's own
 * classes (the {@code io.sparklora.train} package), {@code java.lang} and {@code java.util} values, and arrays of
 * them or of primitives. Anything else fails the read with {@link InvalidClassException} before it is built. A
 * connection is read at all only after it presented the session's random token, which travels in the task closure.
 */
final class SessionWire {
    private SessionWire() {}

    static final long MAGIC = 0x53504B4C4F524131L;   // "SPKLORA1"
    static final int TOKEN_BYTES = 16;
    static final byte ROUND = 1, STOP = 2, RESULT = 3, ERROR = 4;
    /** The largest payload a frame may announce: a corrupt or foreign length fails here, not in an allocation. */
    static final int MAX_PAYLOAD = Integer.MAX_VALUE - 64;

    /** What the driver sends a task each round: the round state without folds, and the folds not sent before. */
    record SessionRound(io.sparklora.train.RoundState state, io.sparklora.train.AdapterTensors[] newFolds) implements Serializable {}

    static final ObjectInputFilter FILTER = ObjectInputFilter.Config.createFilter(
            "maxdepth=32;maxrefs=1000000;io.sparklora.train.*;io.sparklora.spark.train.SessionWire$SessionRound;java.lang.*;java.util.*;!*");

    static byte[] serialize(Serializable value) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
            out.writeObject(value);
        }
        return bytes.toByteArray();
    }

    /** Reads {@code bytes} back as a {@code type}, refusing any class outside {@link #FILTER}. */
    static <T> T deserialize(byte[] bytes, Class<T> type, ClassLoader loader) throws IOException {
        try (ObjectInputStream in = new ObjectInputStream(new ByteArrayInputStream(bytes)) {
            @Override
            protected Class<?> resolveClass(java.io.ObjectStreamClass desc) throws IOException, ClassNotFoundException {
                // the task's class loader: on a cluster the application's classes are not on the system class path
                try {
                    return Class.forName(desc.getName(), false, loader);
                } catch (ClassNotFoundException e) {
                    return super.resolveClass(desc);
                }
            }
        }) {
            in.setObjectInputFilter(FILTER);
            Object o = in.readObject();
            if (!type.isInstance(o)) throw new InvalidClassException("round session: expected a " + type.getName() + ", got a " + o.getClass().getName());
            return type.cast(o);
        } catch (ClassNotFoundException e) {
            throw new InvalidClassException("round session: unknown class " + e.getMessage());
        }
    }

    static void writePayload(DataOutputStream out, byte kind, byte[] payload) throws IOException {
        out.writeByte(kind);
        out.writeInt(payload.length);
        out.write(payload);
        out.flush();
    }

    static byte[] readPayload(DataInputStream in) throws IOException {
        int n = in.readInt();
        if (n < 0 || n > MAX_PAYLOAD) throw new IOException("round session: a frame announced " + n + " bytes");
        byte[] b = new byte[n];
        in.readFully(b);
        return b;
    }
}
