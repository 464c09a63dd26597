package io.sparklora.jobs;

import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.TransformerLM;
import org.nd4j.linalg.api.buffer.DataType;

import java.nio.file.Path;
import java.util.Set;

/** {@code spark-lora merge}: W0 + ΔW written as a plain Hugging Face checkpoint (tokenizer copied along). */
final class MergeCommand {
    static final String USAGE = "merge --model DIR --adapter DIR --out DIR [--dtype float32|float16|bfloat16]";

    private MergeCommand() {}

    static int run(String[] argv) {
        Args a = new Args("merge", argv, Set.of("model", "adapter", "out", "dtype"), Set.of());
        Path modelDir = Path.of(a.require("model"));
        DataType storeAs = switch (a.get("dtype", "float32")) {
            case "float32" -> DataType.FLOAT;
            case "float16" -> DataType.HALF;
            case "bfloat16" -> DataType.BFLOAT16;
            default -> throw new Args.UsageException("merge: --dtype must be float32, float16 or bfloat16");
        };
        TransformerLM model = HfModelDirectory.load(modelDir);
        AttachedAdapter adapter = PeftAdapterFormat.load(model, Path.of(a.require("adapter")), "default");
        adapter.merge();
        adapter.detachMerged();
        HfModelDirectory.save(model, Path.of(a.require("out")), storeAs, modelDir);
        System.out.println("merged checkpoint written to " + a.require("out"));
        return 0;
    }
}
