"""Example Airflow DAG: the spark-lora pipeline as four scheduled spark-submit tasks.

Not run by the project's CI; docs/WORKFLOWS.md explains it. One SparkSubmitOperator per stage, in the
order the pipeline needs them:

    tokenize >> train >> lora_drop >> evaluate

What it relies on (docs/PIPELINE.md, ScheduledStagesIT):
  * every stage command first runs the earlier stages it needs and skips each one whose
    <output>/stages/<stage>/_SUCCESS and result.json exist ("[stage] already complete in ...: skipped"),
    so a retried or re-triggered task redoes only unfinished work and never rewrites finished output;
  * training resumes from its last checkpoint (<output>/checkpoints/LATEST) after a crash or kill;
  * a stage exits 0 when it is complete and non-zero when it failed (1: the stage failed, with the reason on
    stderr; 2: a command-line mistake), which is what spark-submit, and so the operator, report;
  * the run's output directory is shared storage (HDFS, S3): every task and every retry sees it.

Requires apache-airflow-providers-apache-spark and an Airflow connection "spark_lora" whose host is the
cluster's master (yarn, spark://host:7077 or k8s://...). Adjust RUN_CONFIG, JOB_JAR and SPARK_CONF.
"""
from datetime import datetime, timedelta

from airflow import DAG
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

# The pipeline YAML and the shaded jar, both where the driver can read them (jobs/scripts/README.md).
RUN_CONFIG = "hdfs:///spark-lora/runs/my-run.yaml"
JOB_JAR = "hdfs:///spark-lora/jars/spark-lora-jobs.jar"
LOG4J = "/opt/spark-lora/conf/log4j2.properties"   # conf/log4j2.properties: warnings only

# The settings of conf/spark-yarn.conf (spark-submit reads one properties file only; the operator passes
# these with --conf). Keep the Java options equal to conf/jvm.options.
JVM_OPTIONS = " ".join(line.strip() for line in open("/opt/spark-lora/conf/jvm.options")
                       if line.strip() and not line.startswith("#"))
SPARK_CONF = {
    "spark.serializer": "org.apache.spark.serializer.KryoSerializer",
    "spark.kryoserializer.buffer.max": "512m",
    "spark.driver.extraJavaOptions": JVM_OPTIONS + " -Dlog4j2.configurationFile=file:" + LOG4J,
    "spark.executor.extraJavaOptions": JVM_OPTIONS + " -Dlog4j2.configurationFile=log4j2.properties",
    "spark.executor.cores": "8",
    "spark.task.cpus": "8",
    "spark.executorEnv.OMP_NUM_THREADS": "8",
    "spark.executor.memory": "16g",
    "spark.executor.memoryOverhead": "20g",
    "spark.speculation": "false",
    "spark.dynamicAllocation.enabled": "false",
    "spark.network.timeout": "600s",
    "spark.executor.heartbeatInterval": "30s",
}

# stage command -> entry point (jobs/scripts/lib.sh's table)
STAGES = [
    ("tokenize", "io.sparklora.jobs.TokenizeJob"),
    ("train", "io.sparklora.jobs.TrainJob"),
    ("lora-drop", "io.sparklora.jobs.LoraDropJob"),
    ("evaluate", "io.sparklora.jobs.EvaluateJob"),
]

with DAG(
    dag_id="spark_lora",
    start_date=datetime(2026, 1, 1),
    schedule=None,            # trigger by hand or from an upstream data DAG; "@weekly" retrains on a schedule
    catchup=False,
    max_active_runs=1,        # one run per output directory at a time: two runs must not write the same stages
    default_args={
        # a retry is safe: finished stages are skipped and training resumes from its last checkpoint
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
    },
    tags=["spark-lora"],
) as dag:
    previous = None
    for stage, main_class in STAGES:
        task = SparkSubmitOperator(
            task_id=stage.replace("-", "_"),
            conn_id="spark_lora",
            application=JOB_JAR,
            java_class=main_class,
            name=f"spark-lora {stage}",
            application_args=["--config", RUN_CONFIG],
            conf=SPARK_CONF,
            files=LOG4J,
            deploy_mode="cluster",
            # the train stage is the long one: hours on a real model; give it room before Airflow gives up
            execution_timeout=timedelta(hours=12 if stage == "train" else 2),
        )
        if previous is not None:
            previous >> task
        previous = task
