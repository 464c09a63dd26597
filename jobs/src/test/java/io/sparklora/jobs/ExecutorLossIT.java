package io.sparklora.jobs;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.CleanupMode;
import org.junit.jupiter.api.io.TempDir;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * An executor killed with SIGKILL while a training round runs, on a real Spark standalone cluster
 * ({@link StandaloneCluster}: one worker, 2 cores, two executors of 1 core each, so the two partitions of a round run
 * in two executor JVMs). The shortened demo (tiny model, {@code sync: gradients}, K = 1, only the adapter's
 * gradients reduced) runs twice on the same cluster: once without fault; then its train and evaluate stages again, in
 * a copy of the first run's output without them (the same tokenizer, shards and base model bytes), while the test
 * watches {@code metrics.jsonl} and, after round {@value #KILL_AFTER}, asks the driver's REST API which executor runs
 * a task and kills that executor's JVM (a child of the worker). Spark reruns the lost task on the surviving executor or
 * on the one the worker launches in place of the dead one; the train job does not fail and the stage does not restart.
 *
 * <p>Asserted: the run completes with every round; the lost task's partition was rerun (Spark's event log: an
 * {@code ExecutorLostFailure} in a train round, then a successful later attempt of the same partition on another
 * executor); the final adapter file is byte for byte the fault-free run's, and so are the per-round losses, the
 * report's train loss and its perplexities. That holds because a task's result is a function of (round state,
 * partition) alone, whichever JVM computes it: the engine runs {@code spark.task.cpus} threads in every executor
 * (TaskEngine), and the driver's sum of the task results does not depend on which arrives first (with two partitions
 * floating-point addition is commutative whatever the order).
 *
 * <p>The fault-free run and the first faulty run send every round as a Spark job of its own
 * ({@code spark.sparklora.round.session: off}). A third run, the second faulty one, runs its rounds over a round session
 * (the default, {@code spark/train/RoundSession}): the kill ends the session, the round it was running and every later
 * one run as jobs, and its adapter, checkpoints, losses and perplexities are again the fault-free run's, bit for bit.
 *
 * <p>The figures (the train stage's time with and without the kill, the hit round's time against the median round's,
 * tasks lost and rerun) are printed on stdout, in the cluster-it report.
 */
class ExecutorLossIT {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());
    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    private static final int ROUNDS = 8;
    private static final int KILL_AFTER = 4;
    private static final int MAX_KILLS = 3;
    /** Two executors of 1 core and 1 GiB (spark.task.cpus=1: one engine thread per task) on the 2-core, 3 GiB worker. */
    private static final String TWO_EXECUTORS = "--conf spark.executor.cores=1 --conf spark.task.cpus=1 --conf spark.executorEnv.OMP_NUM_THREADS=1 "
            + "--conf spark.executor.memory=1g --conf spark.driver.memory=1g --conf spark.driver.cores=1";

    /** The shortened demo without LoRA-drop and the baseline, {@value #ROUNDS} rounds, with the driver's UI (REST API) and an event log. */
    private static Path config(Path tmp, String name, Path out, Path events, int uiPort, boolean roundSession) throws Exception {
        ObjectNode c = (ObjectNode) YAML.readTree(PipelineDemoTest.smallConfig(out));
        ((ObjectNode) c.get("lora_drop")).put("enabled", false);
        ((ObjectNode) c.get("full_finetune")).put("enabled", false);
        ((ObjectNode) c.get("train")).put("rounds", ROUNDS).put("checkpoint_every", 2).put("sync", "gradients").put("local_steps", 1);
        ((ObjectNode) c.get("spark").get("conf")).put("spark.ui.enabled", "true").put("spark.ui.port", "" + uiPort)
                .put("spark.ui.liveUpdate.period", "0ms")     // the REST API shows a task as soon as it starts
                .put("spark.eventLog.enabled", "true").put("spark.eventLog.dir", Files.createDirectories(events).toUri().toString())
                .put("spark.sparklora.round.session", roundSession ? "auto" : "off");
        Path cfg = tmp.resolve(name + ".yaml");
        Files.writeString(cfg, YAML.writeValueAsString(c));
        return cfg;
    }

    /** A run's outputs and what it took. */
    private record Run(Path out, double seconds) {
        JsonNode report() throws Exception { return JSON.readTree(out.resolve("report.json").toFile()); }

        List<JsonNode> trainLines() throws Exception { return trainLines(out); }

        static List<JsonNode> trainLines(Path out) throws Exception {
            List<JsonNode> l = new ArrayList<>();
            try {
                for (String s : Files.readAllLines(out.resolve("metrics.jsonl"))) {
                    JsonNode n = JSON.readTree(s);
                    if (n.path("stage").asText().equals("train")) l.add(n);
                }
            } catch (NoSuchFileException notYet) {
                // the pipeline has not written a metric yet
            }
            return l;
        }
    }

    @Test
    void aKilledExecutorsTaskIsRerunAndTheAdapterIsBitIdentical(@TempDir(cleanup = CleanupMode.ON_SUCCESS) Path tmp) throws Exception {
        try (StandaloneCluster cluster = StandaloneCluster.start(tmp.resolve("cluster"), 2, "3g")) {
            Path logs = tmp.resolve("logs");

            // the fault-free run
            Path outA = tmp.resolve("fault-free"), eventsA = tmp.resolve("events-fault-free");
            long t0 = System.nanoTime();
            CliProcess.Result a = cluster.submit(logs, "fault-free", TWO_EXECUTORS, "pipeline", "--config",
                    config(tmp, "fault-free", outA, eventsA, StandaloneCluster.freePort(), false).toString()).await(900);
            Run clean = new Run(outA, (System.nanoTime() - t0) / 1e9);
            System.out.println("ExecutorLossIT: fault-free run in " + tmp + ": " + clean.seconds() + " s");
            assertEquals(0, a.code(), a.err());
            assertEquals(ROUNDS, clean.trainLines().size());
            EventLog evA = EventLog.read(eventsA);
            assertEquals(List.of(), evA.lost(), "the fault-free run lost no task");
            assertEquals(ROUNDS, evA.trainStages().size(), "one stage per round: " + evA.stageNames());
            assertEquals(2, clean.report().path("train").path("executors").asInt(), "the two partitions trained in two executor JVMs");

            // the same run, one executor killed mid-round, from the fault-free run's tokenizer, shards and base (copied)
            Path outB = tmp.resolve("faulty"), eventsB = tmp.resolve("events-faulty");
            Faulty fb = runWithAKill(cluster, tmp, logs, "faulty", outA, outB, eventsB, false);
            List<Kill> kills = fb.kills();
            CliProcess.Result rb = fb.result();
            Run faulty = fb.run();
            assertEquals(0, rb.code(), "the run survives the lost executor:\n" + rb.err());
            assertTrue(rb.out().contains("[pretrain] already complete in "), "the faulty run trains on the fault-free run's base:\n" + rb.out());
            assertTrue(rb.err().contains("Lost executor " + kills.get(kills.size() - 1).executor() + " on 127.0.0.1"), rb.err());

            // Spark reran the lost task of the train job: the stage was not restarted from a checkpoint
            EventLog ev = EventLog.read(eventsB);
            assertEquals(ROUNDS, ev.trainStages().size(), "one train stage (one job) per round: no round ran again as a new job: " + ev.stageNames());
            List<TaskEnd> lost = ev.lost();
            assertFalse(lost.isEmpty(), "a task was lost with its executor");
            for (TaskEnd l : lost) {
                assertTrue(ev.trainStages().contains(l.stage()), "lost in a train round: " + l + " (" + ev.stageNames().get(l.stage()) + ")");
                assertTrue(ev.rerunOf(l).isPresent(), "partition " + l.index() + " of stage " + l.stage() + " rerun on another executor: " + ev.ends());
            }
            JsonNode trainResult = JSON.readTree(outB.resolve("stages/train/result.json").toFile());
            assertEquals(0, trainResult.path("resumed_from_round").asInt(-1), "no restart from a checkpoint: " + trainResult);
            assertEquals(ROUNDS, trainResult.path("rounds").asInt(), trainResult.toString());

            // the same results, bit for bit
            assertSameResults(clean, faulty, "the faulty run");

            printFigures(clean, faulty, ev, kills.get(kills.size() - 1), lost.get(lost.size() - 1), kills.size());

            // the same again with the rounds over a round session (the default): the kill ends the session, the round it
            // was running and the rest run as one job each, and the results are still the fault-free run's, bit for bit
            Path outC = tmp.resolve("faulty-session"), eventsC = tmp.resolve("events-faulty-session");
            Faulty fc = runWithAKill(cluster, tmp, logs, "faulty-session", outA, outC, eventsC, true);
            List<Kill> killsC = fc.kills();
            CliProcess.Result rc = fc.result();
            Run session = fc.run();
            assertEquals(0, rc.code(), "the session run survives the lost executor:\n" + rc.err());
            assertTrue(rc.out().contains("rounds run over a round session"), rc.out());
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("round session lost at round (\\d+)").matcher(rc.out());
            assertTrue(m.find(), "the kill ended the session:\n" + rc.out());
            int lostAt = Integer.parseInt(m.group(1));
            EventLog evC = EventLog.read(eventsC);
            assertEquals(1 + ROUNDS - lostAt + 1, evC.trainStages().size(),
                    "the session's stage, then one job per round from round " + lostAt + " on: " + evC.stageNames());
            assertSameResults(clean, session, "the session run");
            System.out.printf(Locale.ROOT, "ExecutorLossIT: round session: executor %s killed with %d rounds logged (%d kill(s)); the session was lost at round %d "
                            + "and rounds %d-%d ran as jobs; rounds' seconds %s; wall time %.1f s for the session run's train and evaluate%n",
                    killsC.get(killsC.size() - 1).executor(), killsC.get(killsC.size() - 1).roundsDone(), killsC.size(), lostAt, lostAt, ROUNDS,
                    roundSeconds(session), session.seconds());
        }
    }

    /**
     * The cost of the kill: from the event log, how long the driver took to notice, when and where the lost partition was
     * rerun, when the replacement executor came and when it first ran a task (its first reads the base model); from the
     * rounds' times, what the rounds from the hit one on took beyond the median of the faulty run's own rounds before it
     * (round 1, which starts the executors, left out).
     */
    private static void printFigures(Run clean, Run faulty, EventLog ev, Kill k, TaskEnd lost, int kills) throws Exception {
        TaskEnd rerun = ev.rerunOf(lost).orElseThrow();
        int hit = ev.trainStages().indexOf(lost.stage()) + 1;
        double[] t = faulty.trainLines().stream().mapToDouble(x -> x.path("seconds").asDouble()).toArray();
        double before = hit > 2 ? Arrays.stream(t, 1, hit - 1).sorted().toArray()[(hit - 2) / 2] : Double.NaN;
        double after = Arrays.stream(t, hit - 1, t.length).sum();
        Optional<Long> replaced = ev.added().values().stream().filter(x -> x > k.millis()).min(Long::compare);
        Optional<TaskEnd> firstOnReplacement = ev.ends().stream()
                .filter(e -> ev.trainStages().contains(e.stage()) && ev.added().getOrDefault(e.executor(), 0L) > k.millis()).findFirst();
        System.out.printf(Locale.ROOT, "ExecutorLossIT: executor %s killed in round %d of %d (%d kill(s)); the driver removed it after %d ms; "
                        + "partition %d rerun (attempt %d) from %d ms on the %s executor %s, for %d ms; tasks lost %d, rerun %d; the replacement executor "
                        + "registered after %s ms and first ran a task in round %s (%s ms); rounds %d-%d took %.2f s against %d x %.2f s (median of rounds 2-%d): "
                        + "%+.2f s; rounds' seconds fault-free %s, faulty %s; wall time %.1f s fault-free, %.1f s for the faulty run's train and evaluate%n",
                k.executor(), hit, ROUNDS, kills, ev.removed().get(k.executor()) - k.millis(), lost.index(), rerun.attempt(), rerun.launch() - k.millis(),
                ev.added().getOrDefault(rerun.executor(), Long.MAX_VALUE) > k.millis() ? "replacement" : "surviving", rerun.executor(),
                rerun.finish() - rerun.launch(), ev.lost().size(), ev.ends().stream().filter(e -> e.attempt() > 0 && e.reason().equals("Success")).count(),
                replaced.map(x -> "" + (x - k.millis())).orElse("(none)"),
                firstOnReplacement.map(e -> "" + (ev.trainStages().indexOf(e.stage()) + 1)).orElse("(none)"),
                firstOnReplacement.map(e -> "" + (e.finish() - e.launch())).orElse("-"),
                hit, ROUNDS, after, ROUNDS - hit + 1, before, hit - 1, after - (ROUNDS - hit + 1) * before,
                roundSeconds(clean), roundSeconds(faulty), clean.seconds(), faulty.seconds());
    }

    private static List<String> roundSeconds(Run r) throws Exception {
        return r.trainLines().stream().map(l -> String.format(Locale.ROOT, "%.2f", l.path("seconds").asDouble())).toList();
    }

    /** Outputs of a run whose train stage has not run, in another place, as a scheduler's retry of the train task finds them. */
    private static final List<String> FROM_TRAIN_ON = List.of("adapter", "checkpoints", "stages/train", "stages/evaluate", "report.json", "report.html",
            "metrics.jsonl");

    /** Copies {@code from} to {@code to} without the train stage's and later outputs (and without their Hadoop .crc files). */
    private static void copyBeforeTrain(Path from, Path to) throws Exception {
        try (Stream<Path> s = Files.walk(from)) {
            for (Path p : s.toList()) {
                String rel = from.relativize(p).toString();
                String plain = p.getFileName().toString().matches("\\..+\\.crc") ? from.relativize(p.resolveSibling(
                        p.getFileName().toString().replaceAll("^\\.(.+)\\.crc$", "$1"))).toString() : rel;
                if (FROM_TRAIN_ON.stream().anyMatch(x -> plain.equals(x) || plain.startsWith(x + "/"))) continue;
                if (Files.isDirectory(p)) Files.createDirectories(to.resolve(rel));
                else Files.copy(p, to.resolve(rel));
            }
        }
        assertTrue(Files.exists(to.resolve("stages/pretrain/_SUCCESS")) && Files.exists(to.resolve("base/model.safetensors")));
        assertFalse(Files.exists(to.resolve("stages/train")));
    }

    /**
     * {@code other}'s results are {@code clean}'s, bit for bit: the final adapter, every checkpoint's tensors (adapter and
     * Adam moments), every round's loss, the report's train loss and its base, adapted and merged perplexities.
     */
    private static void assertSameResults(Run clean, Run other, String which) throws Exception {
        Path a = clean.out(), b = other.out();
        assertArrayEquals(Files.readAllBytes(a.resolve("adapter/adapter_model.safetensors")),
                Files.readAllBytes(b.resolve("adapter/adapter_model.safetensors")), which + ": the final adapter is bit-identical");
        List<Path> checkpointTensors;
        try (Stream<Path> w = Files.walk(a.resolve("checkpoints"))) {
            checkpointTensors = w.filter(p -> p.toString().endsWith(".safetensors")).map(a::relativize).sorted().toList();
        }
        assertFalse(checkpointTensors.isEmpty(), "checkpoints were written (train.checkpoint_every)");
        for (Path c : checkpointTensors) {
            assertArrayEquals(Files.readAllBytes(a.resolve(c)), Files.readAllBytes(b.resolve(c)), which + ": " + c + ": the checkpoints' adapter and Adam moments too");
        }
        assertEquals(clean.trainLines().stream().map(l -> l.path("loss").asDouble()).toList(),
                other.trainLines().stream().map(l -> l.path("loss").asDouble()).toList(), which + ": every round's loss");
        JsonNode ra = clean.report(), rb = other.report();
        assertEquals(ra.path("train").path("final_loss").asDouble(), rb.path("train").path("final_loss").asDouble(), 0.0, which + ": the report's train loss");
        for (String m : List.of("base", "adapted", "merged")) {
            assertEquals(ra.path("eval").path(m).path("perplexity").asDouble(), rb.path("eval").path(m).path("perplexity").asDouble(), 0.0,
                    which + ": " + m + " perplexity");
        }
    }

    /** A run with an executor killed mid-round: its kills, its exit, its outputs and time. */
    private record Faulty(List<Kill> kills, CliProcess.Result result, Run run) {}

    /**
     * Runs the train and evaluate stages again in {@code out}, from a copy of {@code from}'s tokenizer, shards and base,
     * with rounds over a round session or as jobs, and kills an executor mid-round ({@link #killAnExecutorMidRound}).
     */
    private static Faulty runWithAKill(StandaloneCluster cluster, Path tmp, Path logs, String name, Path from, Path out, Path events,
                                       boolean roundSession) throws Exception {
        copyBeforeTrain(from, out);
        int uiPort = StandaloneCluster.freePort();
        long t0 = System.nanoTime();
        CliProcess.Started run = cluster.submit(logs, name, TWO_EXECUTORS, "pipeline", "--config",
                config(tmp, name, out, events, uiPort, roundSession).toString());
        List<Kill> kills;
        CliProcess.Result result;
        try {
            kills = killAnExecutorMidRound(cluster, run, out, uiPort);
            result = run.await(900);
        } finally {
            run.process().descendants().forEach(ProcessHandle::destroyForcibly);
            run.process().destroyForcibly();
        }
        return new Faulty(kills, result, new Run(out, (System.nanoTime() - t0) / 1e9));
    }

    /** One SIGKILL: which executor, its pid, when (epoch ms) and how many rounds were done when it landed. */
    private record Kill(String executor, long pid, long millis, int roundsDone) {}

    /**
     * Waits until the run has done {@value #KILL_AFTER} rounds, then kills an executor that runs a task (the driver's REST
     * API says which). Then checks that the driver lost a task with it; when the kill fell between the round's tasks instead
     * (possible, not likely: a task runs far longer than the few milliseconds from the REST answer to the kill), kills again
     * in a later round, up to {@value #MAX_KILLS} times.
     */
    private static List<Kill> killAnExecutorMidRound(StandaloneCluster cluster, CliProcess.Started run, Path out, int uiPort) throws Exception {
        List<Kill> kills = new ArrayList<>();
        long deadline = System.nanoTime() + Duration.ofSeconds(900).toNanos();
        while (kills.size() < MAX_KILLS) {
            int after = kills.isEmpty() ? KILL_AFTER : kills.get(kills.size() - 1).roundsDone() + 1;
            boolean restAnswers = false;
            while (Run.trainLines(out).size() < after) {
                assertTrue(run.process().isAlive() && System.nanoTime() < deadline,
                        "the run ended (or 900 s passed) before round " + after + ":\n" + Files.readString(run.err()));
                // the REST API's first answer takes a while (Jersey starts): have it done before the moment to kill
                if (!restAnswers) restAnswers = get(uiPort, "/api/v1/applications").isPresent();
                Thread.sleep(20);
            }
            Kill k = null;
            while (k == null) {
                assertTrue(run.process().isAlive() && System.nanoTime() < deadline, "the run ended before an executor could be killed mid-round");
                assertTrue(Run.trainLines(out).size() < ROUNDS - 1, "training ended before an executor was killed mid-round (kills: " + kills
                        + "; the worker's children: " + cluster.worker().children().map(p -> p.info().commandLine().orElse("?")).toList() + ")");
                k = killBusyExecutor(cluster, uiPort, Run.trainLines(out).size());
                if (k == null) Thread.sleep(10);
            }
            kills.add(k);
            // the driver logs "Lost executor N", then "Lost task ... (... executor N): ExecutorLostFailure" for each task it ran; a lost
            // task's round cannot end before its rerun, so a round that ends without that line means the kill fell between tasks
            String lostTask = "executor " + k.executor() + "): ExecutorLostFailure";
            boolean hit = false;
            while (!hit) {
                assertTrue(run.process().isAlive() && System.nanoTime() < deadline, "the run ended (or 900 s passed) before the round of the kill did:\n" + Files.readString(run.err()));
                boolean roundEnded = Run.trainLines(out).size() > k.roundsDone();
                hit = Files.readString(run.err()).lines().anyMatch(l -> l.contains("Lost task") && l.contains(lostTask));
                if (roundEnded && !hit) break;
                Thread.sleep(20);
            }
            if (hit) return kills;
        }
        throw new AssertionError(MAX_KILLS + " kills all fell between tasks: " + kills);
    }

    /** Kills (SIGKILL) an executor that the driver says runs a task, if one does. */
    private static Kill killBusyExecutor(StandaloneCluster cluster, int uiPort, int roundsDone) throws Exception {
        Optional<String> app = get(uiPort, "/api/v1/applications").flatMap(a -> a.size() == 1 ? Optional.of(a.get(0).path("id").asText()) : Optional.empty());
        if (app.isEmpty()) return null;
        Optional<JsonNode> executors = get(uiPort, "/api/v1/applications/" + app.get() + "/executors");
        if (executors.isEmpty()) return null;
        for (JsonNode e : executors.get()) {
            String id = e.path("id").asText();
            if (id.equals("driver") || e.path("activeTasks").asInt() == 0) continue;
            Optional<ProcessHandle> jvm = cluster.worker().children().filter(p -> {
                List<String> args = Arrays.asList(p.info().arguments().orElse(new String[0]));
                int i = args.indexOf("--executor-id"), j = args.indexOf("--app-id");
                return args.contains("org.apache.spark.executor.CoarseGrainedExecutorBackend")
                        && i >= 0 && args.get(i + 1).equals(id) && j >= 0 && args.get(j + 1).equals(app.get());
            }).findFirst();
            if (jvm.isEmpty()) continue;    // already gone (a kill before this one, not yet removed from the driver's view)
            long millis = System.currentTimeMillis();
            assertTrue(jvm.get().destroyForcibly(), "SIGKILL sent to executor " + id);
            jvm.get().onExit().get();
            return new Kill(id, jvm.get().pid(), millis, roundsDone);
        }
        return null;
    }

    /** The JSON the driver's REST API answers on {@code path}, or empty while it does not answer. */
    private static Optional<JsonNode> get(int uiPort, String path) {
        try {
            HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + uiPort + path)).timeout(Duration.ofSeconds(5)).build(),
                    HttpResponse.BodyHandlers.ofString());
            return r.statusCode() == 200 ? Optional.of(JSON.readTree(r.body())) : Optional.empty();
        } catch (java.io.IOException notYet) {
            return Optional.empty();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    /** A task's end in Spark's event log: its stage, partition index, attempt, executor, end reason, launch and finish (epoch ms). */
    private record TaskEnd(int stage, int index, int attempt, String executor, String reason, long launch, long finish) {}

    /**
     * What an application's event log says: its task ends, stage names, the train rounds' stages (in order: round 1
     * first) and when each executor was added and removed (epoch ms).
     */
    private record EventLog(List<TaskEnd> ends, Map<Integer, String> stageNames, List<Integer> trainStages, Map<String, Long> added,
                            Map<String, Long> removed) {
        static EventLog read(Path dir) throws Exception {
            List<Path> logs;
            try (Stream<Path> s = Files.list(dir)) {
                logs = s.toList();
            }
            assertEquals(1, logs.size(), "one application's event log in " + dir + ": " + logs);
            assertFalse(logs.get(0).getFileName().toString().endsWith(".inprogress"), "the driver stopped cleanly: " + logs);
            EventLog log = new EventLog(new ArrayList<>(), new HashMap<>(), new ArrayList<>(), new HashMap<>(), new HashMap<>());
            for (String line : Files.readAllLines(logs.get(0))) {
                JsonNode e = JSON.readTree(line);
                switch (e.path("Event").asText()) {
                    case "SparkListenerStageSubmitted" -> {
                        JsonNode st = e.path("Stage Info");
                        int id = st.path("Stage ID").asInt();
                        // a round is one job of one stage; TrainStage is in its call stack (the name is the innermost spark-lora frame)
                        if (log.stageNames.put(id, st.path("Stage Name").asText()) == null && st.path("Details").asText().contains("io.sparklora.spark.train.TrainStage")) {
                            log.trainStages.add(id);
                        }
                    }
                    case "SparkListenerTaskEnd" -> {
                        JsonNode info = e.path("Task Info");
                        log.ends.add(new TaskEnd(e.path("Stage ID").asInt(), info.path("Index").asInt(), info.path("Attempt").asInt(),
                                info.path("Executor ID").asText(), e.path("Task End Reason").path("Reason").asText(),
                                info.path("Launch Time").asLong(), info.path("Finish Time").asLong()));
                    }
                    case "SparkListenerExecutorAdded" -> log.added.put(e.path("Executor ID").asText(), e.path("Timestamp").asLong());
                    case "SparkListenerExecutorRemoved" -> log.removed.put(e.path("Executor ID").asText(), e.path("Timestamp").asLong());
                    default -> { }
                }
            }
            return log;
        }

        List<TaskEnd> lost() { return ends.stream().filter(e -> e.reason().equals("ExecutorLostFailure")).toList(); }

        /** The successful later attempt of a lost task's partition, on another executor. */
        Optional<TaskEnd> rerunOf(TaskEnd l) {
            return ends.stream().filter(e -> e.stage() == l.stage() && e.index() == l.index() && e.attempt() > l.attempt()
                    && e.reason().equals("Success") && !e.executor().equals(l.executor())).findFirst();
        }
    }
}
