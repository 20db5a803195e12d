import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;

import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.http.Protocol;
import software.amazon.awssdk.http.nio.netty.NettyNioAsyncHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.cloudwatch.CloudWatchAsyncClient;
import software.amazon.awssdk.services.dynamodb.DynamoDbAsyncClient;
import software.amazon.awssdk.services.kinesis.KinesisAsyncClient;
import software.amazon.kinesis.common.ConfigsBuilder;
import software.amazon.kinesis.common.InitialPositionInStream;
import software.amazon.kinesis.common.InitialPositionInStreamExtended;
import software.amazon.kinesis.common.LeaseCleanupConfig;
import software.amazon.kinesis.coordinator.Scheduler;
import software.amazon.kinesis.leases.LeaseManagementConfig;
import software.amazon.kinesis.lifecycle.events.InitializationInput;
import software.amazon.kinesis.lifecycle.events.LeaseLostInput;
import software.amazon.kinesis.lifecycle.events.ProcessRecordsInput;
import software.amazon.kinesis.lifecycle.events.ShardEndedInput;
import software.amazon.kinesis.lifecycle.events.ShutdownRequestedInput;
import software.amazon.kinesis.metrics.MetricsLevel;
import software.amazon.kinesis.metrics.NullMetricsFactory;
import software.amazon.kinesis.processor.ShardRecordProcessor;
import software.amazon.kinesis.processor.SingleStreamTracker;
import software.amazon.kinesis.retrieval.KinesisClientRecord;
import software.amazon.kinesis.retrieval.RetrievalConfig;
import software.amazon.kinesis.retrieval.polling.PollingConfig;

/**
 * A Java KCL 2.x worker for Shardline's tests: it reads a stream through the
 * real KCL (Scheduler, polling, DynamoDB leases), appends each record's data
 * as one line to OUT_FILE and checkpoints after every batch, so that tests
 * can put it on one lease table with Shardline workers.
 *
 * Environment: KINESIS_ENDPOINT, DYNAMODB_ENDPOINT (loopback emulators),
 * STREAM, APP_NAME (the lease table), WORKER_ID, OUT_FILE; optional
 * FAILOVER_MS (default 3000), SHARD_SYNC_MS (default 1000), IDLE_MS
 * (default 200), LEASE_CLEANUP_MS and COMPLETED_CLEANUP_MS (how often the
 * LeaseCleanupManager runs, and deletes the leases of finished shards whose
 * children have started; KCL defaults 60 000 and 300 000). Every client has an endpoint override; CloudWatch metrics
 * are off (its client points at the discard port). SIGTERM shuts the
 * scheduler down gracefully (leases checkpointed and released).
 * Lifecycle events go to stderr as "KCL-EVENT <what> <shard>" lines.
 */
public final class ShardlineKclWorker {
    static OutputStream out;

    static String env(String name, String fallback) {
        String value = System.getenv(name);
        if (value == null || value.isEmpty()) {
            if (fallback == null) throw new IllegalArgumentException("set " + name);
            return fallback;
        }
        return value;
    }

    static void event(String what, String shard) {
        System.err.println("KCL-EVENT " + what + " " + shard);
        System.err.flush();
    }

    public static void main(String[] args) throws Exception {
        String stream = env("STREAM", null), app = env("APP_NAME", null), worker = env("WORKER_ID", null);
        out = new FileOutputStream(env("OUT_FILE", null), true);
        StaticCredentialsProvider credentials = StaticCredentialsProvider.create(AwsBasicCredentials.create("test", "test"));
        KinesisAsyncClient kinesis = KinesisAsyncClient.builder().endpointOverride(URI.create(env("KINESIS_ENDPOINT", null)))
                .region(Region.US_EAST_1).credentialsProvider(credentials)
                .httpClient(NettyNioAsyncHttpClient.builder().protocol(Protocol.HTTP1_1).build()).build();
        DynamoDbAsyncClient dynamodb = DynamoDbAsyncClient.builder().endpointOverride(URI.create(env("DYNAMODB_ENDPOINT", null)))
                .region(Region.US_EAST_1).credentialsProvider(credentials)
                .httpClient(NettyNioAsyncHttpClient.builder().protocol(Protocol.HTTP1_1).build()).build();
        CloudWatchAsyncClient cloudWatch = CloudWatchAsyncClient.builder().endpointOverride(URI.create("http://127.0.0.1:9"))
                .region(Region.US_EAST_1).credentialsProvider(credentials)
                .httpClient(NettyNioAsyncHttpClient.builder().protocol(Protocol.HTTP1_1).build()).build();

        ConfigsBuilder configs = new ConfigsBuilder(
                new SingleStreamTracker(stream, InitialPositionInStreamExtended.newInitialPosition(InitialPositionInStream.TRIM_HORIZON)),
                app, kinesis, dynamodb, cloudWatch, worker, Processor::new);
        RetrievalConfig retrieval = configs.retrievalConfig().retrievalSpecificConfig(
                new PollingConfig(stream, kinesis).idleTimeBetweenReadsInMillis(Long.parseLong(env("IDLE_MS", "200"))));
        LeaseManagementConfig leases = configs.leaseManagementConfig()
                .failoverTimeMillis(Long.parseLong(env("FAILOVER_MS", "3000")))
                .shardSyncIntervalMillis(Long.parseLong(env("SHARD_SYNC_MS", "1000")));
        cleanupIntervals(leases);
        Scheduler scheduler = new Scheduler(configs.checkpointConfig(), configs.coordinatorConfig(), leases, configs.lifecycleConfig(),
                configs.metricsConfig().metricsLevel(MetricsLevel.NONE).metricsFactory(new NullMetricsFactory()),
                configs.processorConfig(), retrieval);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                scheduler.startGracefulShutdown().get(30, TimeUnit.SECONDS);
                event("shutdown-done", "-");
            } catch (Exception e) {
                event("shutdown-failed " + e, "-");
            }
        }, "graceful-shutdown"));
        event("start " + worker, "-");
        scheduler.run();
    }

    /**
     * LEASE_CLEANUP_MS / COMPLETED_CLEANUP_MS. LeaseManagementConfig has no
     * setter for its LeaseCleanupConfig in KCL 2.5.x (a final field), so it
     * is replaced by reflection, in tests only.
     */
    static void cleanupIntervals(LeaseManagementConfig leases) throws Exception {
        String every = System.getenv("LEASE_CLEANUP_MS"), completed = System.getenv("COMPLETED_CLEANUP_MS");
        if (every == null && completed == null) return;
        LeaseCleanupConfig current = leases.leaseCleanupConfig();
        LeaseCleanupConfig changed = LeaseCleanupConfig.builder()
                .leaseCleanupIntervalMillis(every == null ? current.leaseCleanupIntervalMillis() : Long.parseLong(every))
                .completedLeaseCleanupIntervalMillis(completed == null ? current.completedLeaseCleanupIntervalMillis() : Long.parseLong(completed))
                .garbageLeaseCleanupIntervalMillis(current.garbageLeaseCleanupIntervalMillis())
                .build();
        java.lang.reflect.Field field = LeaseManagementConfig.class.getDeclaredField("leaseCleanupConfig");
        field.setAccessible(true);
        field.set(leases, changed);
        event("lease-cleanup " + changed.leaseCleanupIntervalMillis() + "/" + changed.completedLeaseCleanupIntervalMillis(), "-");
    }

    static final class Processor implements ShardRecordProcessor {
        String shard = "?";

        public void initialize(InitializationInput input) {
            shard = input.shardId();
            event("initialize", shard);
        }

        public void processRecords(ProcessRecordsInput input) {
            try {
                synchronized (ShardlineKclWorker.class) {
                    for (KinesisClientRecord record : input.records()) {
                        ByteBuffer data = record.data();
                        byte[] bytes = new byte[data.remaining()];
                        data.get(bytes);
                        out.write(bytes);
                        out.write('\n');
                    }
                    out.flush();
                }
                if (!input.records().isEmpty()) input.checkpointer().checkpoint();
            } catch (Exception e) {
                event("process-failed " + e, shard);
            }
        }

        public void leaseLost(LeaseLostInput input) {
            event("lease-lost", shard);
        }

        public void shardEnded(ShardEndedInput input) {
            try {
                input.checkpointer().checkpoint();
                event("shard-ended", shard);
            } catch (Exception e) {
                event("shard-end-checkpoint-failed " + e, shard);
            }
        }

        public void shutdownRequested(ShutdownRequestedInput input) {
            try {
                input.checkpointer().checkpoint();
                event("shutdown-checkpoint", shard);
            } catch (Exception e) {
                event("shutdown-checkpoint-failed " + e, shard);
            }
        }
    }
}
