package io.sparklora.spark.train;

import io.sparklora.train.RoundState;
import org.apache.spark.broadcast.Broadcast;

import java.io.Serializable;

/**
 * How a round's {@link RoundState} reaches the tasks: inside the task closure (small states: it rides in the
 * task binary Spark ships anyway, with no broadcast to write, fetch and destroy), or as a broadcast (large
 * states: fetched once per executor, not once per task). Exactly one of the two fields is set.
 */
final class RoundStateRef implements Serializable {
    private static final long serialVersionUID = 1L;
    private final RoundState inline;
    private final Broadcast<RoundState> broadcast;

    private RoundStateRef(RoundState inline, Broadcast<RoundState> broadcast) {
        this.inline = inline;
        this.broadcast = broadcast;
    }

    static RoundStateRef inline(RoundState state) { return new RoundStateRef(state, null); }

    static RoundStateRef broadcast(Broadcast<RoundState> b) { return new RoundStateRef(null, b); }

    RoundState value() { return inline != null ? inline : broadcast.value(); }

    /** Whether the state travels as a broadcast (which the driver destroys after the round). */
    boolean isBroadcast() { return broadcast != null; }

    /** Destroys the broadcast, if any. */
    void release() {
        if (broadcast != null) broadcast.destroy();
    }
}
