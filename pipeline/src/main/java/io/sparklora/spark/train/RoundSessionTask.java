package io.sparklora.spark.train;

import io.sparklora.spark.TaskEngine;
import io.sparklora.train.AdapterTensors;
import io.sparklora.train.RoundResult;
import io.sparklora.train.RoundState;
import io.sparklora.train.TokenBlocks;
import org.apache.spark.TaskContext;
import org.apache.spark.broadcast.Broadcast;
import scala.collection.Iterator;
import scala.runtime.AbstractFunction1;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.util.ArrayList;
import java.util.List;

/**
 * A task of a round session ({@link RoundSession}), one per partition in one barrier stage that lasts the whole
 * training: it connects to the driver, then runs every round the driver sends it ({@link TrainRoundTask#work}, the
 * same work as a task of its own would do) and sends back the round's result, until the driver says stop or closes
 * the connection. Its partition's shard is read once, at the first round.
 *
 * <p>A round that throws is reported to the driver as an {@code ERROR} frame and the task then ends normally: the
 * driver reruns that round as a Spark job of its own, where Spark's retries and error reporting apply. Only a task
 * that cannot reach the driver fails.
 */
final class RoundSessionTask extends AbstractFunction1<Iterator<Integer>, Iterator<Integer>> implements Serializable {
    private static final long serialVersionUID = 1L;
    private static final int CONNECT_TIMEOUT_MS = 30_000;
    private final Broadcast<TrainTaskContext> context;
    private final String host;
    private final int port;
    private final byte[] token;
    private final String runId;

    RoundSessionTask(Broadcast<TrainTaskContext> context, String host, int port, byte[] token, String runId) {
        this.context = context;
        this.host = host;
        this.port = port;
        this.token = token.clone();
        this.runId = runId;
    }

    @Override
    public Iterator<Integer> apply(Iterator<Integer> ignored) {
        // TaskContext, not BarrierTaskContext.get(): Spark 3.5's BarrierTaskContext object starts a non-daemon timer
        // thread when it is first touched, which keeps a local-mode JVM alive after main returns
        TaskContext task = TaskContext.get();
        int partition = task.partitionId();
        try (Socket socket = new Socket()) {
            socket.connect(new InetSocketAddress(host, port), CONNECT_TIMEOUT_MS);
            socket.setTcpNoDelay(true);
            DataOutputStream out = new DataOutputStream(new BufferedOutputStream(socket.getOutputStream(), 1 << 16));
            DataInputStream in = new DataInputStream(new BufferedInputStream(socket.getInputStream(), 1 << 16));
            out.writeLong(SessionWire.MAGIC);
            out.write(token);
            out.writeInt(partition);
            out.writeInt(task.stageAttemptNumber());
            out.flush();
            serve(partition, in, out);
        } catch (IOException e) {
            throw new UncheckedIOException("round session: partition " + partition + " lost its connection to the driver at "
                    + host + ":" + port + ": " + e.getMessage(), e);
        }
        return scala.collection.JavaConverters.asScalaIterator(java.util.Collections.<Integer>emptyIterator());
    }

    /** Runs rounds until {@code STOP} or the driver closes the connection. */
    private void serve(int partition, DataInputStream in, DataOutputStream out) throws IOException {
        TrainTaskContext ctx = context.value();
        String gpu = TaskEngine.bind().orElse(null);
        ClassLoader loader = Thread.currentThread().getContextClassLoader();
        List<AdapterTensors> folds = new ArrayList<>();
        TokenBlocks[] shard = {null};
        while (true) {
            int kind;
            try {
                kind = in.readByte();
            } catch (EOFException e) {
                return;     // the driver closed the session
            }
            if (kind == SessionWire.STOP) return;
            if (kind != SessionWire.ROUND) throw new IOException("round session: unexpected frame " + kind + " from the driver");
            SessionWire.SessionRound msg = SessionWire.deserialize(SessionWire.readPayload(in), SessionWire.SessionRound.class, loader);
            folds.addAll(List.of(msg.newFolds()));
            RoundState st = folds.isEmpty() ? msg.state() : msg.state().withFolds(folds);
            RoundResult result;
            try {
                result = TrainRoundTask.work(ctx, partition, () -> {
                    if (shard[0] == null) shard[0] = ctx.shards().load(partition, ctx.conf().get());
                    return shard[0];
                }, st, runId);
            } catch (RuntimeException | Error e) {
                out.writeByte(SessionWire.ERROR);
                out.writeUTF(truncate(e + " (partition " + partition + ", round " + (st.round() + 1) + ")"));
                out.flush();
                if (e instanceof VirtualMachineError) throw (Error) e;
                return;
            }
            if (gpu != null) result.gpus.add(gpu);
            SessionWire.writePayload(out, SessionWire.RESULT, SessionWire.serialize(result));
        }
    }

    private static String truncate(String s) {
        return s.length() <= 8000 ? s : s.substring(0, 8000) + "…";
    }
}
