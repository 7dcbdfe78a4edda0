// Creates the connections table (the template's ConnectionsTable) in the local DynamoDB.
import { DynamoDBClient, CreateTableCommand, waitUntilTableExists } from '@aws-sdk/client-dynamodb';

const client = new DynamoDBClient({});
const TableName = process.env.TABLE_NAME;
await client.send(new CreateTableCommand({
  TableName,
  AttributeDefinitions: [{ AttributeName: 'connectionId', AttributeType: 'S' }],
  KeySchema: [{ AttributeName: 'connectionId', KeyType: 'HASH' }],
  BillingMode: 'PAY_PER_REQUEST',
}));
await waitUntilTableExists({ client, maxWaitTime: 30, minDelay: 1, maxDelay: 1 }, { TableName });
console.log(`table ${TableName} created`);
