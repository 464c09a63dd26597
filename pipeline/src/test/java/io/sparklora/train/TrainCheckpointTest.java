package io.sparklora.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.TransformerLM;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.factory.Nd4j;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** Resume takes the newest complete checkpoint directory, whatever LATEST says, and never a partial one. */
class TrainCheckpointTest {
    final Configuration conf = new Configuration();

    void write(String out, AttachedAdapter a, int round) throws Exception {
        TrainCheckpoint.write(conf, out, a, Map.of("step", Nd4j.scalar((double) round)), Map.of(),
                new ObjectMapper().createObjectNode().put("rounds_done", round).put("global_step", round), round, "base");
    }

    @Test
    void resumeTakesTheNewestCompleteDirectoryEvenWithoutLatest(@TempDir Path tmp) throws Exception {
        TransformerLM m = TransformerLM.randomInit(ModelConfig.gpt2(64, 32, 1, 2, 16), 1);
        AttachedAdapter a = AttachedAdapter.attach(m, "default", AdapterConfig.lora(2, 4, List.of("c_attn")), 1, Map.of());
        String out = tmp.toString();
        assertTrue(TrainCheckpoint.latest(conf, out).isEmpty(), "no checkpoint yet");
        write(out, a, 2);
        write(out, a, 4);
        write(out, a, 6);
        Path dir = tmp.resolve("checkpoints");
        assertEquals("round-000006", Files.readString(dir.resolve(TrainCheckpoint.LATEST)).strip());
        assertFalse(Files.exists(dir.resolve("round-000002")), "the two newest are kept");
        assertTrue(Files.isDirectory(dir.resolve("round-000004")));
        // a kill between removing LATEST and renaming the new one into place
        Files.delete(dir.resolve(TrainCheckpoint.LATEST));
        assertEquals(6, TrainCheckpoint.latest(conf, out).orElseThrow().roundsDone());
        // a kill after round 6's rename and before LATEST's: LATEST one behind
        Files.writeString(dir.resolve(TrainCheckpoint.LATEST), "round-000004\n");
        assertEquals(6, TrainCheckpoint.latest(conf, out).orElseThrow().roundsDone());
        // a kill while round 8 was being filled: its hidden temporary is never taken
        Files.createDirectories(dir.resolve(".round-000008.tmp-1234"));
        Files.writeString(dir.resolve(".round-000008.tmp-1234").resolve("state.json"), "{\"rounds_done\": 8");
        assertEquals(6, TrainCheckpoint.latest(conf, out).orElseThrow().roundsDone());
        assertEquals(6.0, TrainCheckpoint.latest(conf, out).orElseThrow().optimizer().get("step").getDouble(0));
    }
}
