package triggerlistener;

import com.azure.cosmos.ChangeFeedProcessor;
import com.azure.cosmos.ChangeFeedProcessorBuilder;
import com.azure.cosmos.ConsistencyLevel;
import com.azure.cosmos.CosmosAsyncClient;
import com.azure.cosmos.CosmosAsyncDatabase;
import com.azure.cosmos.CosmosClientBuilder;
import com.azure.cosmos.models.ChangeFeedProcessorItem;
import com.azure.cosmos.models.ChangeFeedProcessorOptions;
import com.azure.cosmos.models.CosmosContainerProperties;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.NullNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.databind.util.RawValue;

import java.io.BufferedReader;
import java.io.FileOutputStream;
import java.io.FileDescriptor;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Plays the Functions host's Cosmos DB trigger listener for one instance of an app: Microsoft's Java change feed
 * processor (com.azure:azure-cosmos, {@code ChangeFeedProcessorBuilder.handleLatestVersionChanges}) on each
 * monitored container, its leases in the lease container under the function's lease prefix, as the Cosmos DB
 * extension's CosmosDBTriggerListener runs the .NET processor.
 *
 * <p>Each batch goes to the Python process that invokes the function (devhost/trigger_listener.py), one line on
 * stdout: {@code batch <number> <function> <the batch as a JSON array>}. The answer comes on stdin:
 * {@code <number> ok} or {@code <number> failed <reason>}. The handler returns only after {@code ok}, so the
 * processor checkpoints the batch; after {@code failed} it throws, so the processor keeps its continuation and
 * hands the batch again, as the extension's delegate does while the retry policy retries. End of stdin stops
 * the processors and the program.
 *
 * <p>Arguments are {@code name=value}: endpoint, database, lease-container, create-lease-container, host-name,
 * max-items, start-time, start-from-beginning, poll-delay-ms, lease-renew-ms, lease-acquire-ms, lease-expiration-ms,
 * and one {@code function=<name>:<container>:<handler>:<lease prefix>} per function, whose handler is
 * {@code handleLatestVersionChanges}, {@code handleChanges} or {@code handleAllVersionsAndDeletesChanges}. The
 * account key comes in COSMOS_KEY. Everything the SDK logs goes to stderr; stdout carries only the protocol.
 *
 * <p>In all versions and deletes mode each change crosses as the Functions host hands it to the worker: the Cosmos DB
 * extension's {@code CosmosDBTriggerValueBinder} (azure-webjobs-sdk-extensions,
 * src/WebJobs.Extensions.CosmosDB/Trigger/CosmosdbTriggerValueBinder.cs) turns the .NET processor's
 * {@code IReadOnlyCollection<ChangeFeedItem<JObject>>} into {@code JArray.FromObject(...).ToString(Formatting.None)}
 * for a string parameter, so each element is Newtonsoft's serialization of the .NET SDK's {@code ChangeFeedItem} and
 * {@code ChangeFeedMetadata} (azure-cosmos-dotnet-v3, Microsoft.Azure.Cosmos/src/Resource/FullFidelity/, as made GA
 * by commit d044d4c1f, #5825): see {@link #asDotNetChangeFeedItem}.
 */
public final class TriggerListener {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Map<Long, CompletableFuture<String>> ANSWERS = new ConcurrentHashMap<>();
    private static final AtomicLong BATCHES = new AtomicLong();
    private static PrintStream protocol;
    private static volatile boolean stopping;

    private TriggerListener() {
    }

    public static void main(String[] args) throws Exception {
        protocol = new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);
        System.setOut(System.err);
        Map<String, String> settings = new LinkedHashMap<>();
        List<String[]> functions = new ArrayList<>();
        for (String arg : args) {
            int eq = arg.indexOf('=');
            if (eq < 0) {
                throw new IllegalArgumentException("arguments are name=value, got " + arg);
            }
            if (arg.startsWith("function=")) {
                functions.add(arg.substring(eq + 1).split(":", 4));
            } else {
                settings.put(arg.substring(0, eq), arg.substring(eq + 1));
            }
        }
        String key = System.getenv("COSMOS_KEY");
        if (key == null || key.isEmpty()) {
            throw new IllegalArgumentException("COSMOS_KEY (the account key) is not set");
        }

        CosmosAsyncClient client = new CosmosClientBuilder()
            .endpoint(required(settings, "endpoint"))
            .key(key)
            .gatewayMode()
            .consistencyLevel(ConsistencyLevel.SESSION)
            .contentResponseOnWriteEnabled(true)
            .buildAsyncClient();
        CosmosAsyncDatabase database = client.getDatabase(required(settings, "database"));
        String leaseContainer = required(settings, "lease-container");
        if (Boolean.parseBoolean(settings.getOrDefault("create-lease-container", "false"))) {
            // As the extension with createLeaseContainerIfNotExists: partition key /id.
            database.createContainerIfNotExists(new CosmosContainerProperties(leaseContainer, "/id")).block();
        }

        List<ChangeFeedProcessor> processors = new ArrayList<>();
        for (String[] function : functions) {
            String name = function[0];
            ChangeFeedProcessorOptions options = new ChangeFeedProcessorOptions()
                .setLeasePrefix(function[3])
                .setMaxItemCount(Integer.parseInt(settings.getOrDefault("max-items", "100")))
                .setStartFromBeginning(Boolean.parseBoolean(settings.getOrDefault("start-from-beginning", "false")))
                .setFeedPollDelay(millis(settings, "poll-delay-ms", ChangeFeedProcessorOptions.DEFAULT_FEED_POLL_DELAY))
                .setLeaseRenewInterval(millis(settings, "lease-renew-ms", ChangeFeedProcessorOptions.DEFAULT_RENEW_INTERVAL))
                .setLeaseAcquireInterval(millis(settings, "lease-acquire-ms", ChangeFeedProcessorOptions.DEFAULT_ACQUIRE_INTERVAL))
                .setLeaseExpirationInterval(millis(settings, "lease-expiration-ms", ChangeFeedProcessorOptions.DEFAULT_EXPIRATION_INTERVAL));
            if (settings.containsKey("start-time")) {
                options.setStartTime(Instant.parse(settings.get("start-time")));
            }
            ChangeFeedProcessorBuilder builder = new ChangeFeedProcessorBuilder()
                .hostName(required(settings, "host-name"))
                .feedContainer(database.getContainer(function[1]))
                .leaseContainer(database.getContainer(leaseContainer))
                .options(options);
            switch (function[2]) {
                // handleChanges: the older partition-key-range leases, whose ids hold names (what check must read too).
                case "handleChanges" -> builder.handleChanges(documents -> handOver(name, documents));
                case "handleLatestVersionChanges" -> builder.handleLatestVersionChanges(items -> {
                    List<JsonNode> documents = new ArrayList<>();
                    for (ChangeFeedProcessorItem item : items) {
                        documents.add(item.getCurrent());
                    }
                    handOver(name, documents);
                });
                case "handleAllVersionsAndDeletesChanges" -> builder.handleAllVersionsAndDeletesChanges(items -> {
                    List<JsonNode> changes = new ArrayList<>();
                    for (ChangeFeedProcessorItem item : items) {
                        changes.add(asDotNetChangeFeedItem(item));
                    }
                    handOver(name, changes);
                });
                default -> throw new IllegalArgumentException("unknown handler " + function[2] + " for " + name);
            }
            processors.add(builder.buildChangeFeedProcessor());
        }
        for (ChangeFeedProcessor processor : processors) {
            processor.start().block();
        }
        say("ready");

        BufferedReader answers = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        for (String line; (line = answers.readLine()) != null; ) {
            String[] parts = line.split(" ", 2);
            CompletableFuture<String> answer = ANSWERS.get(Long.parseLong(parts[0]));
            if (answer != null) {
                answer.complete(parts.length > 1 ? parts[1] : "");
            }
        }
        // The host is stopping: a batch still running fails, so that it is not checkpointed.
        stopping = true;
        ANSWERS.values().forEach(answer -> answer.complete("failed: the instance is stopping"));
        for (ChangeFeedProcessor processor : processors) {
            processor.stop().block(Duration.ofSeconds(30));
        }
        client.close();
        System.exit(0);
    }

    /** Hands one batch to the test process and waits for the invocation's outcome; throws when it failed. */
    private static void handOver(String function, List<JsonNode> documents) {
        ArrayNode batch = JSON.createArrayNode();
        batch.addAll(documents);
        long number = BATCHES.incrementAndGet();
        CompletableFuture<String> answer = new CompletableFuture<>();
        ANSWERS.put(number, answer);
        if (stopping) {
            answer.complete("failed: the instance is stopping");
        }
        try {
            say("batch " + number + " " + function + " " + JSON.writeValueAsString(batch));
            String outcome = answer.get();
            if (!outcome.equals("ok")) {
                throw new IllegalStateException(function + " invocation failed: " + outcome);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(function + ": interrupted while the function ran", e);
        } catch (java.util.concurrent.ExecutionException | com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(function + ": " + e, e);
        } finally {
            ANSWERS.remove(number);
        }
    }

    /**
     * One change as Newtonsoft writes the .NET SDK's {@code ChangeFeedItem<JObject>}: its properties in declaration
     * order, {@code current} (null on a delete: no NullValueHandling on it), {@code metadata}, then {@code previous}
     * only when there is one (NullValueHandling.Ignore). {@code ChangeFeedMetadata}: {@code crts} (a double,
     * ConflictResolutionTimestampInSeconds), {@code lsn}, {@code operationType} (StringEnumConverter with its
     * EnumMember names), {@code previousImageLSN}, {@code timeToLiveExpired} (value types: always written, 0 and
     * false when the service sent none), then {@code id} and {@code partitionKey} only when set (deletes).
     */
    static ObjectNode asDotNetChangeFeedItem(ChangeFeedProcessorItem item) {
        JsonNode wire = item.toJsonNode();
        JsonNode metadata = wire.path("metadata");
        ObjectNode converted = JSON.createObjectNode();
        converted.set("current", item.getCurrent() == null ? NullNode.getInstance() : item.getCurrent());
        ObjectNode dotNetMetadata = converted.putObject("metadata");
        dotNetMetadata.putRawValue("crts", new RawValue(newtonsoftDouble(metadata.path("crts").asDouble())));
        dotNetMetadata.put("lsn", metadata.path("lsn").asLong());
        dotNetMetadata.put("operationType", metadata.path("operationType").asText());
        dotNetMetadata.put("previousImageLSN", metadata.path("previousImageLSN").asLong(0));
        dotNetMetadata.put("timeToLiveExpired", metadata.path("timeToLiveExpired").asBoolean(false));
        if (metadata.hasNonNull("id")) {
            dotNetMetadata.set("id", metadata.get("id"));
        }
        if (metadata.hasNonNull("partitionKey")) {
            dotNetMetadata.set("partitionKey", metadata.get("partitionKey"));
        }
        if (item.getPrevious() != null && !item.getPrevious().isNull()) {
            converted.set("previous", item.getPrevious());
        }
        return converted;
    }

    /**
     * Newtonsoft's JsonConvert.ToString(double): .NET's shortest round-trip digits, with ".0" added to a whole number
     * (EnsureDecimalPlace). Plain digits suffice for a timestamp in seconds; .NET writes an exponent from 1e15 on.
     */
    static String newtonsoftDouble(double value) {
        String digits = new BigDecimal(Double.toString(value)).stripTrailingZeros().toPlainString();
        return digits.contains(".") ? digits : digits + ".0";
    }

    private static synchronized void say(String line) {
        protocol.println(line);
    }

    private static String required(Map<String, String> settings, String name) {
        String value = settings.get(name);
        if (value == null || value.isEmpty()) {
            throw new IllegalArgumentException(name + "= is required");
        }
        return value;
    }

    private static Duration millis(Map<String, String> settings, String name, Duration otherwise) {
        String value = settings.get(name);
        return value == null ? otherwise : Duration.ofMillis(Long.parseLong(value));
    }
}
