package io.sparklora.spark.train;

import org.apache.spark.broadcast.Broadcast;

import java.io.Serializable;

/**
 * How a round's state ({@link io.sparklora.train.RoundState}, or one per adapter in a shared round) reaches the tasks: inside the task closure (small states: it rides in the
 * task binary Spark ships anyway, with no broadcast to write, fetch and destroy), or as a broadcast (large
 * states: fetched once per executor, not once per task). Exactly one of the two fields is set.
 */
final class RoundStateRef<T extends Serializable> implements Serializable {
    private static final long serialVersionUID = 1L;
    private final T inline;
    private final Broadcast<T> broadcast;

    private RoundStateRef(T inline, Broadcast<T> broadcast) {
        this.inline = inline;
        this.broadcast = broadcast;
    }

    static <T extends Serializable> RoundStateRef<T> inline(T state) { return new RoundStateRef<>(state, null); }

    static <T extends Serializable> RoundStateRef<T> broadcast(Broadcast<T> b) { return new RoundStateRef<>(null, b); }

    /** Inline when its tensors take at most {@code inlineMaxBytes} ({@link TrainStage#inlineMaxBytes}), else a broadcast made here. */
    static <T extends Serializable> RoundStateRef<T> of(org.apache.spark.api.java.JavaSparkContext sc, T state, long tensorBytes, long inlineMaxBytes) {
        return tensorBytes <= inlineMaxBytes ? inline(state) : broadcast(sc.broadcast(state));
    }

    T value() { return inline != null ? inline : broadcast.value(); }

    /** Whether the state travels as a broadcast (which the driver destroys after the round). */
    boolean isBroadcast() { return broadcast != null; }

    /** Destroys the broadcast, if any. */
    void release() {
        if (broadcast != null) broadcast.destroy();
    }
}
