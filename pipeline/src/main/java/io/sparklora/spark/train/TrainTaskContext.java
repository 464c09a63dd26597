package io.sparklora.spark.train;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.KryoSerializable;
import com.esotericsoftware.kryo.io.Input;
import com.esotericsoftware.kryo.io.Output;
import io.sparklora.spark.ShardSource;
import io.sparklora.storage.SerializableConfiguration;
import io.sparklora.train.TrainSpec;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.io.Serializable;
import java.io.UncheckedIOException;

/**
 * What every task of every round of one train stage shares and nothing changes: the stage's settings, where its
 * shards are, and the Hadoop configuration. It travels once per stage as a broadcast, which each executor JVM
 * deserialises once, instead of inside every round's task closure: a Hadoop configuration alone serialises to
 * about 100 KB and took 5–15 ms to read back in each task of each round (docs/BENCHMARKS.md, "Distributed rounds").
 *
 * <p>Broadcast values go through Spark's serializer, Kryo, which can build neither the records inside nor the
 * configuration's custom form; this class hands Kryo its Java-serialised form.
 */
public final class TrainTaskContext implements Serializable, KryoSerializable {
    private static final long serialVersionUID = 1L;
    private TrainSpec spec;
    private ShardSource shards;
    private SerializableConfiguration conf;

    public TrainTaskContext(TrainSpec spec, ShardSource shards, SerializableConfiguration conf) {
        this.spec = spec;
        this.shards = shards;
        this.conf = conf;
    }

    public TrainSpec spec() { return spec; }

    public ShardSource shards() { return shards; }

    public SerializableConfiguration conf() { return conf; }

    @Override
    public void write(Kryo kryo, Output output) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
            out.writeObject(spec);
            out.writeObject(shards);
            out.writeObject(conf);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot serialise the train stage's task context: " + e.getMessage(), e);
        }
        output.writeInt(bytes.size());
        output.writeBytes(bytes.toByteArray());
    }

    @Override
    public void read(Kryo kryo, Input input) {
        byte[] bytes = input.readBytes(input.readInt());
        try (ObjectInputStream in = new ObjectInputStream(new ByteArrayInputStream(bytes)) {
            @Override
            protected Class<?> resolveClass(java.io.ObjectStreamClass desc) throws IOException, ClassNotFoundException {
                // the task's class loader: on a cluster the application's classes are not on the system class path
                try {
                    return Class.forName(desc.getName(), false, kryo.getClassLoader());
                } catch (ClassNotFoundException e) {
                    return super.resolveClass(desc);
                }
            }
        }) {
            spec = (TrainSpec) in.readObject();
            shards = (ShardSource) in.readObject();
            conf = (SerializableConfiguration) in.readObject();
        } catch (IOException | ClassNotFoundException e) {
            throw new IllegalStateException("cannot read the train stage's task context: " + e.getMessage(), e);
        }
    }
}
