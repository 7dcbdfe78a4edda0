// $connect: remember the connection in the connections table (the sample's onconnect, SDK v3).
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';

const ddb = DynamoDBDocumentClient.from(new DynamoDBClient({}));

export const handler = async (event) => {
  try {
    await ddb.send(new PutCommand({
      TableName: process.env.TABLE_NAME,
      Item: { connectionId: event.requestContext.connectionId },
    }));
  } catch (err) {
    return { statusCode: 500, body: `Failed to connect: ${err}` };
  }
  return { statusCode: 200, body: 'Connected.' };
};
