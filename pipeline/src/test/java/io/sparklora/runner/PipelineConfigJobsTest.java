package io.sparklora.runner;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** The {@code jobs:} list of a pipeline config: what it takes from the top level, and the configs it refuses, by name. */
class PipelineConfigJobsTest {
    private static final String HEAD = "name: t\n"
            + "datasets:\n  adapt: datasets-manifests/demo/spam.yaml\n"
            + "base:\n  path: /models/tiny\n"
            + "adapter:\n  type: lora\n  r: 8\n  targets: [c_attn]\n"
            + "train:\n  rounds: 5\n  lr: 0.003\n  batch_size: 4\n";

    private static PipelineConfig parse(String yaml) { return PipelineConfig.parse(yaml, "t.yaml"); }

    private static String refused(String yaml) {
        return assertThrows(IllegalArgumentException.class, () -> parse(yaml)).getMessage();
    }

    @Test
    void jobsTakeWhatTheyLeaveOutFromTheTopLevelAndLoraDropIsOffUnlessWritten() {
        PipelineConfig c = parse(HEAD + "jobs:\n"
                + "  - {name: a}\n"
                + "  - name: b\n    dataset: datasets-manifests/kjv-demo.yaml\n    objective: language_model\n"
                + "    adapter: {type: dora, r: 4, targets: [c_fc]}\n    train: {lr: 0.01, rounds: 2, seed: 7}\n");
        assertEquals(2, c.jobs.size());
        var a = c.jobs.get(0);
        var b = c.jobs.get(1);
        assertEquals("datasets-manifests/demo/spam.yaml", a.dataset(c));
        assertEquals("lora", c.jobAdapterConfig(a).method());
        assertEquals(8, c.jobAdapterConfig(a).r());
        assertEquals(new PipelineConfig.JobTraining(5, 4, 1, 0.003, 0.0, 5, "cosine", 1.0, 42, 10), c.jobTraining(a));
        assertEquals("dora", c.jobAdapterConfig(b).method());
        assertEquals(4, c.jobAdapterConfig(b).r());
        assertEquals(java.util.List.of("c_fc"), c.jobAdapterConfig(b).targetModules());
        assertEquals(new PipelineConfig.JobTraining(2, 4, 1, 0.01, 0.0, 5, "cosine", 1.0, 7, 10), c.jobTraining(b));
        assertEquals(io.sparklora.data.TrainingObjective.LANGUAGE_MODEL, b.objective(c));
        assertFalse(c.loraDrop.enabled, "with jobs, lora_drop is off unless enabled");
        assertTrue(parse(HEAD).loraDrop.enabled, "without jobs, the default is as before");
        assertNull(parse(HEAD).jobs);
    }

    @Test
    void duplicateNamesAreRefused() {
        String m = refused(HEAD + "jobs:\n  - {name: a}\n  - {name: b}\n  - {name: a, train: {lr: 0.01}}\n");
        assertTrue(m.contains("job 'a' (jobs[2])") && m.contains("a second job named 'a'") && m.contains("jobs[0]"), m);
    }

    @Test
    void aNameThatCannotNameADirectoryOrNoNameIsRefused() {
        String m = refused(HEAD + "jobs:\n  - {name: ../up}\n");
        assertTrue(m.contains("jobs[0]") && m.contains("names a directory"), m);
        String none = refused(HEAD + "jobs:\n  - {dataset: x.yaml}\n");
        assertTrue(none.contains("jobs[0]: name is required"), none);
        assertTrue(refused(HEAD + "jobs: []\n").contains("jobs: is empty"));
    }

    @Test
    void anUnknownKeyInAJobNamesTheJobAndTheKey() {
        String m = refused(HEAD + "jobs:\n  - {name: a}\n  - name: b\n    train: {lr: 0.01, rouns: 3}\n");
        assertTrue(m.contains("job 'b' (jobs[1])") && m.contains("unknown key 'train.rouns'") && m.contains("rounds"), m);
        String top = refused(HEAD + "jobs:\n  - {name: a, datset: x.yaml}\n");
        assertTrue(top.contains("job 'a' (jobs[0])") && top.contains("unknown key 'datset'") && top.contains("dataset"), top);
        String shared = refused(HEAD + "jobs:\n  - name: a\n    train: {sync: parameters}\n");
        assertTrue(shared.contains("job 'a'") && shared.contains("unknown key 'train.sync'"), "sync is shared, not a job's: " + shared);
        String adapter = refused(HEAD + "jobs:\n  - name: c\n    adapter: {type: lora, d_initial: 0.1, targets: [c_attn]}\n");
        assertTrue(adapter.contains("job 'c'") && adapter.contains("d_initial"), adapter);
        String method = refused(HEAD + "jobs:\n  - name: c\n    adapter: {type: lora, bogus_key: 1}\n");
        assertTrue(method.contains("job 'c'") && method.contains("bogus_key"), method);
    }

    @Test
    void stagesForOneAdapterAreRefusedWithJobs() {
        String drop = refused(HEAD + "lora_drop:\n  enabled: true\njobs:\n  - {name: a}\n");
        assertTrue(drop.contains("lora_drop") && drop.contains("cannot run with jobs:") && drop.contains("lora_drop.enabled: false"), drop);
        String glora = refused(HEAD.replace("type: lora", "type: glora") + "glora_search:\n  enabled: true\njobs:\n  - {name: a}\n");
        assertTrue(glora.contains("glora_search") && glora.contains("cannot run with jobs:"), glora);
        String ranks = refused(HEAD + "evaluate:\n  ranks: [2]\njobs:\n  - {name: a}\n");
        assertTrue(ranks.contains("evaluate.ranks"), ranks);
        String dp = refused(HEAD + "  dp: {mode: example}\nlora_drop: {enabled: false}\njobs:\n  - {name: a}\n");
        assertTrue(dp.contains("train.dp") && dp.contains("jobs:"), dp);
        String stack = refused(HEAD + "  sync: parameters\n  average_optimizer_state: false\n  aggregate: stack\nlora_drop: {enabled: false}\njobs:\n  - {name: a}\n");
        assertTrue(stack.contains("aggregate: stack") && stack.contains("jobs"), "stacking merges into the weights the jobs share: " + stack);
        PipelineConfig off = parse(HEAD + "lora_drop:\n  enabled: false\nfull_finetune:\n  enabled: true\njobs:\n  - {name: a}\n");
        assertTrue(off.fullFinetune.enabled, "full_finetune stays as the baseline on datasets.adapt");
    }

    @Test
    void aJobThatWouldTrainBaseTensorsIsRefused() {
        String tokens = refused(HEAD.replace("targets: [c_attn]\n", "targets: [c_attn]\n  trainable_token_indices: labels\n") + "jobs:\n  - {name: a}\n");
        assertTrue(tokens.contains("job 'a'") && tokens.contains("trains base tensors") && tokens.contains("top-level adapter"), tokens);
        String bias = refused(HEAD + "jobs:\n  - name: b\n    adapter: {type: lora, bias: all, targets: [c_attn]}\n");
        assertTrue(bias.contains("job 'b'") && bias.contains("bias: all"), bias);
    }

    @Test
    void datasetsAdaptIsNeededOnlyWhereAJobOrFullFinetuneUsesIt() {
        String noAdapt = HEAD.replace("datasets:\n  adapt: datasets-manifests/demo/spam.yaml\n", "");
        PipelineConfig c = parse(noAdapt + "jobs:\n  - {name: a, dataset: datasets-manifests/kjv-demo.yaml}\n");
        assertNull(c.datasets.adapt);
        String m = refused(noAdapt + "jobs:\n  - {name: a, dataset: datasets-manifests/kjv-demo.yaml}\n  - {name: b}\n");
        assertTrue(m.contains("datasets.adapt") && m.contains("every job that names none"), m);
        String outside = refused(HEAD + "jobs:\n  - {name: a, dataset: ../elsewhere.yaml}\n");
        assertTrue(outside.contains("jobs[a].dataset") && outside.contains("outside"), outside);
    }
}
