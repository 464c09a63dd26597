package io.sparklora.jobs;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The driver killed mid-checkpoint-write, between the two renames of a checkpoint, mid-train and mid-evaluate, each
 * time as abruptly as SIGKILL (the JVM halts at a named point: {@code util/FaultPoints}), and rerun with the same
 * command each time. The rerun resumes from the newest complete checkpoint, never from a partial one; a lock left by
 * the killed driver is taken over; and the final adapters and report equal an uninterrupted run's.
 */
class DriverKillIT {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static CliProcess.Result pipeline(Path logs, String name, Path cfg, String halt) throws Exception {
        Map<String, String> env = halt == null ? Map.of()
                : Map.of("SPARK_LORA_JAVA_OPTS", "-Xmx2g -Dsparklora.fault.halt=" + halt);
        CliProcess.Started s = CliProcess.start(logs, name, env, "pipeline", "--config", cfg.toString());
        return s.await(600);
    }

    private static void assertHalted(CliProcess.Result r, String point) {
        assertEquals(137, r.code(), "halted as by SIGKILL at " + point + ":\n" + r.err());
        assertTrue(r.err().contains("fault injected: halting at " + point), r.err());
    }

    private static List<String> names(Path dir) throws Exception {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void killedAtEveryStepTheRerunsFinishWithTheUninterruptedRunsResults(@TempDir Path tmp) throws Exception {
        Path logs = tmp.resolve("logs");
        Path cleanOut = tmp.resolve("clean"), out = tmp.resolve("killed");
        Path cleanCfg = tmp.resolve("clean.yaml"), cfg = tmp.resolve("killed.yaml");
        Files.writeString(cleanCfg, ScheduledStagesIT.config(cleanOut));
        Files.writeString(cfg, ScheduledStagesIT.config(out));
        long t0 = System.nanoTime();
        CliProcess.Result clean = pipeline(logs, "clean", cleanCfg, null);
        assertEquals(0, clean.code(), clean.err());
        double cleanSeconds = (System.nanoTime() - t0) / 1e9;

        // 1. mid-checkpoint-write: round 4's checkpoint is filled under its temporary name, not yet renamed
        assertHalted(pipeline(logs, "kill-1", cfg, "write.before-rename:round-000004"), "write.before-rename:round-000004");
        Path ckpt = out.resolve("checkpoints");
        List<String> after1 = names(ckpt);
        assertTrue(after1.contains("round-000002"), after1.toString());
        assertFalse(after1.contains("round-000004"), "no partial checkpoint under a complete one's name: " + after1);
        assertTrue(after1.stream().anyMatch(n -> n.startsWith(".round-000004.tmp-")), "the partial one is a hidden temporary: " + after1);
        assertTrue(Files.exists(out.resolve("_RUN_LOCK")), "the killed driver left its lock");

        // 2. between the renames: round 4 is complete under its name, LATEST still names round 2
        CliProcess.Result r2 = pipeline(logs, "kill-2", cfg, "write.before-rename:LATEST");
        assertHalted(r2, "write.before-rename:LATEST");
        assertTrue(r2.out().contains("taking over the lock on") && r2.out().contains("no longer exists"), r2.out());
        assertTrue(r2.out().contains("train: resuming after round 2"), "resumed from the last complete checkpoint:\n" + r2.out());
        assertEquals("round-000002", Files.readString(ckpt.resolve("LATEST")).strip(), "LATEST is replaced in one rename: old or new, never gone");
        assertTrue(Files.isDirectory(ckpt.resolve("round-000004")));

        // 3. mid-train, after round 7 was applied: resumes from round 4 although LATEST is one behind
        CliProcess.Result r3 = pipeline(logs, "kill-3", cfg, "train.round:7");
        assertHalted(r3, "train.round:7");
        assertTrue(r3.out().contains("train: resuming after round 4"), r3.out());

        // 4. mid-evaluate: its job has run, its figures are not written yet
        CliProcess.Result r4 = pipeline(logs, "kill-4", cfg, "evaluate.scored");
        assertHalted(r4, "evaluate.scored");
        assertTrue(r4.out().contains("train: resuming after round 6"), r4.out());
        assertTrue(Files.exists(out.resolve("stages/train/_SUCCESS")) && !Files.exists(out.resolve("stages/evaluate/_SUCCESS")));

        // 5. the last rerun finishes
        long t5 = System.nanoTime();
        CliProcess.Result last = pipeline(logs, "rerun", cfg, null);
        double rerunSeconds = (System.nanoTime() - t5) / 1e9;
        assertEquals(0, last.code(), last.err());
        assertTrue(last.out().contains("[train] already complete"), last.out());
        assertFalse(Files.exists(out.resolve("_RUN_LOCK")), "released at the end");

        for (String f : List.of("adapter/adapter_model.safetensors", "lora-drop/adapter/adapter_model.safetensors",
                "full-finetune/model.safetensors", "base/model.safetensors")) {
            assertArrayEquals(Files.readAllBytes(cleanOut.resolve(f)), Files.readAllBytes(out.resolve(f)), f + " differs from the uninterrupted run's");
        }
        JsonNode a = JSON.readTree(cleanOut.resolve("report.json").toFile()), b = JSON.readTree(out.resolve("report.json").toFile());
        for (String m : List.of("base", "adapted", "merged", "full_finetune")) {
            assertEquals(a.path("eval").path(m), b.path("eval").path(m), "eval." + m);
        }
        assertEquals(a.path("train").path("final_loss").asDouble(), b.path("train").path("final_loss").asDouble(), 0.0);
        assertEquals(6, JSON.readTree(out.resolve("stages/train/result.json").toFile()).path("resumed_from_round").asInt());
        assertEquals(a.path("lora_drop").path("kept"), b.path("lora_drop").path("kept"));
        System.out.printf("DriverKillIT: uninterrupted run %.1f s; the final rerun after four kills %.1f s%n", cleanSeconds, rerunSeconds);
    }
}
