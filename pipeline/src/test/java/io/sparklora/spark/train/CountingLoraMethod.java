package io.sparklora.spark.train;

import io.sparklora.adapters.Adapter;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.TrainingHooks;
import io.sparklora.adapters.lora.LoraAdapter;
import io.sparklora.adapters.lora.LoraMethod;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.Linear;
import io.sparklora.model.TransformerLM;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

import java.util.List;
import java.util.Map;

/**
 * A method that exists only in the tests, written the way a new method is: one class outside {@code model/},
 * {@code train/}, {@code spark/} and {@code runner/}, registered by name. It has per-round state: a step
 * counter that {@code afterStep} advances and that scales every layer's LoRA delta by 1 + ½·(counter mod 2).
 * A worker that did not receive the counter, or a resume that lost it, computes other gradients.
 */
final class CountingLoraMethod extends LoraMethod {
    static final String NAME = "test_counting_lora";

    /** The state all layers of one attached adapter share. */
    static final class Counter {
        long steps;

        double factor() { return 1 + 0.5 * (steps % 2); }
    }

    static final class Layer extends LoraAdapter {
        final Counter counter;

        Layer(String adapterName, Linear base, AdapterConfig config, Random rng, Counter counter) {
            super(adapterName, base, config, rng);
            this.counter = counter;
        }

        @Override
        public Activation forward(INDArray x, INDArray baseOut, ForwardContext ctx) {
            Activation a = super.forward(x, baseOut, ctx);
            a.delta().muli(counter.factor());
            return a;
        }

        @Override
        public INDArray backward(Activation activation, INDArray dy) {
            return super.backward(activation, dy.mul(counter.factor()));
        }

        @Override
        public INDArray deltaWeight() { return super.deltaWeight().muli(counter.factor()); }
    }

    @Override public String name() { return NAME; }

    @Override
    public Layers create(TransformerLM model, String adapterName, List<String> modules, AdapterConfig config, long seed,
                         Map<String, String> shareGroups) {
        Random rng = io.sparklora.model.Seeds.rng(seed);
        Counter counter = new Counter();
        Map<String, Adapter> layers = new java.util.LinkedHashMap<>();
        for (String m : modules) layers.put(m, new Layer(adapterName, model.linears().get(m), config, rng, counter));
        return new Layers(layers, Map.of());
    }

    static long counter(AttachedAdapter a) { return ((Layer) a.layers().values().iterator().next()).counter.steps; }

    @Override
    public TrainingHooks hooks(AttachedAdapter adapter) {
        Counter c = ((Layer) adapter.layers().values().iterator().next()).counter;
        return new TrainingHooks() {
            @Override public void afterStep(long step) { c.steps++; }

            @Override public Map<String, INDArray> roundState() { return Map.of("steps", Nd4j.scalar(DataType.FLOAT, (float) c.steps).reshape(1)); }

            @Override public void loadRoundState(Map<String, INDArray> state) {
                INDArray s = state.get("steps");
                if (s == null) throw new IllegalStateException("round state without 'steps'");
                c.steps = Math.round(s.getDouble(0));
            }
        };
    }
}
