package io.sparklora.optim;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparklora.model.Parameter;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.factory.Nd4j;

import java.io.InputStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Replays the float64 trajectory recorded from torch.optim.AdamW by bench/reference/adamw_reference.py
 * (two groups with different lr and weight decay, a per-step lr factor, one all-zero gradient).
 */
class AdamWTorchReferenceTest {

    private static double[] doubles(JsonNode array) {
        double[] out = new double[array.size()];
        for (int i = 0; i < out.length; i++) out[i] = array.get(i).asDouble();
        return out;
    }

    @Test
    void matchesTorchAdamWTrajectory() throws Exception {
        JsonNode doc;
        try (InputStream in = getClass().getResourceAsStream("/optim/adamw_reference.json")) {
            assertNotNull(in, "reference resource missing");
            doc = new ObjectMapper().readTree(in);
        }
        List<ParamGroup> groups = new ArrayList<>();
        Map<Parameter, JsonNode> recorded = new LinkedHashMap<>();
        for (JsonNode g : doc.get("groups")) {
            List<Parameter> params = new ArrayList<>();
            for (JsonNode pj : g.get("params")) {
                long[] shape = new long[pj.get("shape").size()];
                for (int i = 0; i < shape.length; i++) shape[i] = pj.get("shape").get(i).asLong();
                Parameter p = new Parameter(pj.get("name").asText(),
                        Nd4j.createFromArray(doubles(pj.get("init"))).reshape(shape), true, g.get("name").asText());
                params.add(p);
                recorded.put(p, pj);
            }
            groups.add(ParamGroup.withLrMultiplier(g.get("name").asText(), params,
                    g.get("lr_multiplier").asDouble(), g.get("weight_decay").asDouble()));
        }
        AdamW opt = new AdamW(groups, doc.get("base_lr").asDouble(), doc.get("beta1").asDouble(),
                doc.get("beta2").asDouble(), doc.get("eps").asDouble());

        JsonNode factors = doc.get("lr_factors");
        for (int step = 0; step < factors.size(); step++) {
            for (Map.Entry<Parameter, JsonNode> e : recorded.entrySet()) {
                e.getKey().zeroGrad();
                e.getKey().accumulate(Nd4j.createFromArray(doubles(e.getValue().get("grads").get(step))));
            }
            opt.step(factors.get(step).asDouble());
            for (Map.Entry<Parameter, JsonNode> e : recorded.entrySet()) {
                assertArrayEquals(doubles(e.getValue().get("expected").get(step)),
                        e.getKey().value().reshape(-1).toDoubleVector(), 1e-12,
                        e.getKey().name() + " after step " + (step + 1));
            }
        }
    }
}
